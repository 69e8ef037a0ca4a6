// Fuzzing GGUF files through the shared property (tests/fuzz/harness.ts): the OLMoE fixture gguf-py wrote, with its
// header bytes damaged, 8-byte counts / lengths / offsets overwritten, or the file cut short; opened as the app opens
// it (header, config, load plan). A GGUF header costs ~4 ms to read here, so this runs 2,000 inputs;
// tests/unit/io-gguf-fuzz.test.ts runs 10,000 more (whole files, tokenizer included; it checks the file is named).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readGgufHeader } from '../../src/io/gguf';
import { buildGgufLoadPlan, ggufConfig } from '../../src/io/gguf-model';
import { MemorySource } from '../../src/io/source';
import { FUZZ_RUNS, fuzzParser } from './harness';

const FILE = 'model.gguf';
const good = new Uint8Array(readFileSync(join(__dirname, '..', 'fixtures', 'gguf-olmoe', FILE)));
const HEAD = Math.min(16384, good.length); // the header and the first tensors

const damaged = fc.record({
  edits: fc.array(fc.record({ at: fc.nat({ max: HEAD - 1 }), byte: fc.nat({ max: 255 }) }), { maxLength: 6 }),
  big: fc.option(fc.record({
    at: fc.nat({ max: HEAD - 8 }),
    value: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 63n)),
  })),
  cut: fc.option(fc.nat({ max: good.length }), { freq: 4 }),
}).map(({ edits, big, cut }) => {
  const bytes = good.slice(0, cut ?? good.length);
  for (const e of edits) if (e.at < bytes.length) bytes[e.at] = e.byte;
  if (big && big.at + 8 <= bytes.length) new DataView(bytes.buffer).setBigUint64(big.at, big.value, true);
  return bytes;
});

describe('fuzz: GGUF', () => {
  it('header, config and load plan: accepted, or an error naming model.gguf and the field', async () => {
    const outcome = await fuzzParser({
      name: 'GGUF header + config + plan',
      input: damaged,
      files: [FILE],
      seed: 0x6606,
      runs: Math.ceil(FUZZ_RUNS / 5),
      parse: async (bytes: Uint8Array) => {
        const h = await readGgufHeader(new MemorySource(FILE, bytes));
        buildGgufLoadPlan(h, ggufConfig(h));
      },
    });
    expect(outcome.accepted).toBeGreaterThan(20);
    expect(outcome.rejected).toBeGreaterThan(1000);
  });
});
