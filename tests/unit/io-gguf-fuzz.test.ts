// Fuzzed GGUF headers (fast-check, 10,000 in all): mutated and truncated copies of a header gguf-py wrote, and random
// bytes after a valid preamble. Every one must either open or fail with a ModelFileError (file and field named),
// never another exception, and quickly (no hang: each open is timed).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelFileError } from '../../src/io/errors';
import { readGgufHeader } from '../../src/io/gguf';
import { buildGgufLoadPlan, ggufConfig, openGguf } from '../../src/io/gguf-model';
import { MemorySource, memoryFolder } from '../../src/io/source';

const good = new Uint8Array(readFileSync(join(__dirname, '..', 'fixtures', 'gguf-olmoe', 'model.gguf')));
const MAX_MS_PER_FILE = 1000;

/** Opens `bytes` as a model (header, config and plan; with `tokenizer`, the whole of openGguf). */
async function openAll(bytes: Uint8Array, tokenizer: boolean): Promise<void> {
  if (tokenizer) {
    await openGguf(memoryFolder({ 'f.gguf': bytes }), 'f.gguf');
    return;
  }
  const h = await readGgufHeader(new MemorySource('f.gguf', bytes));
  buildGgufLoadPlan(h, ggufConfig(h));
}

async function survives(bytes: Uint8Array, tokenizer: boolean): Promise<boolean> {
  const t0 = performance.now();
  try {
    await openAll(bytes, tokenizer);
  } catch (e) {
    if (!(e instanceof ModelFileError) || !e.message.startsWith('f.gguf: ')) throw e;
  }
  const ms = performance.now() - t0;
  if (ms > MAX_MS_PER_FILE) throw new Error(`took ${ms.toFixed(0)} ms`);
  return true;
}

const header = good.subarray(0, 16384); // the whole header and the first tensors
const mutation = fc.record({
  edits: fc.array(fc.record({ at: fc.nat({ max: header.length - 1 }), byte: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 8 }),
  // Large values written over 8 aligned-or-not bytes: counts, lengths, dims, offsets.
  big: fc.option(fc.record({ at: fc.nat({ max: header.length - 8 }), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) })),
  cut: fc.option(fc.nat({ max: good.length })),
});

function mutate(m: { edits: { at: number; byte: number }[]; big: { at: number; value: bigint } | null; cut: number | null }): Uint8Array {
  const bytes = good.slice(0, m.cut ?? good.length);
  for (const e of m.edits) if (e.at < bytes.length) bytes[e.at] = e.byte;
  if (m.big && m.big.at + 8 <= bytes.length) new DataView(bytes.buffer).setBigUint64(m.big.at, m.big.value, true);
  return bytes;
}

describe('fuzzed GGUF headers', () => {
  it('8,000 mutated copies of a real header: header, config and plan', async () => {
    await fc.assert(fc.asyncProperty(mutation, (m) => survives(mutate(m), false)), { numRuns: 8000, seed: 14 });
  }, 120_000);

  it('1,000 mutated copies opened whole, tokenizer included', async () => {
    await fc.assert(fc.asyncProperty(mutation, (m) => survives(mutate(m), true)), { numRuns: 1000, seed: 15 });
  }, 120_000);

  it('1,000 random headers after a valid preamble', async () => {
    const preamble = good.subarray(0, 8); // "GGUF", version 3
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), fc.nat({ max: 40 }), fc.nat({ max: 40 }), async (rest, tensors, kvs) => {
        const bytes = new Uint8Array(24 + rest.length);
        bytes.set(preamble);
        new DataView(bytes.buffer).setBigUint64(8, BigInt(tensors), true);
        new DataView(bytes.buffer).setBigUint64(16, BigInt(kvs), true);
        bytes.set(rest, 24);
        return survives(bytes, true);
      }),
      { numRuns: 1000, seed: 16 },
    );
  }, 120_000);

  it('the unmutated file opens (the properties above are not all failures)', async () => {
    await expect(openAll(good, true)).resolves.toBeUndefined();
  });
});
