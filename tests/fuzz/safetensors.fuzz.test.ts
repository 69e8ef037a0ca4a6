// Fuzzing the safetensors header reader and sharded checkpoints (see tests/fuzz/harness.ts and docs/reliability.md).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { INDEX_FILE, MAX_HEADER_BYTES, openCheckpoint, readSafetensorsHeader, SAFETENSORS_DTYPE_BYTES, SINGLE_FILE} from '../../src/io/safetensors';
import { MemorySource, memoryFolder } from '../../src/io/source';
import { byteMutation, fuzzParser, nastyJson, objectMutation } from './harness';

const FILE = SINGLE_FILE;
const DTYPES = Object.keys(SAFETENSORS_DTYPE_BYTES);

/** A valid header as a plain object (tensors laid out back to back) and the data section's length. */
const validHeader = fc
  .array(fc.record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }) }), { minLength: 1, maxLength: 4 })
  .map((tensors) => {
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let at = 0;
    tensors.forEach((t, i) => {
      const bytes = t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_BYTES[t.dtype];
      header[`t${i}`] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + bytes] };
      at += bytes;
    });
    return { header, dataBytes: at };
  });

/** One structural edit of a tensor entry: a field replaced or dropped, offsets aimed at another tensor or past the end. */
const entryEdit = fc.oneof(
  fc.record({ field: fc.constantFrom('dtype', 'shape', 'data_offsets', 'extra'), value: nastyJson }),
  fc.record({ field: fc.constant('dtype'), value: fc.constantFrom(...DTYPES, 'F4', 'f32', 'toString', '__proto__') }),
  fc.record({ field: fc.constant('shape'), value: fc.array(fc.constantFrom(0, 1, 3, -1, 1.5, 2 ** 26, 2 ** 40, 2 ** 53), { maxLength: 4 }) }),
  fc.record({ field: fc.constant('data_offsets'), value: fc.tuple(fc.integer({ min: -2, max: 200 }), fc.integer({ min: -2, max: 200 })) }),
  fc.record({ field: fc.constant('drop'), value: fc.constantFrom('dtype', 'shape', 'data_offsets') }),
);

const mutatedHeader = validHeader.chain(({ header, dataBytes }) =>
  fc.record({
    header: fc.oneof(
      { weight: 1, arbitrary: fc.constant(header) },
      {
        weight: 4,
        arbitrary: fc.array(fc.tuple(fc.constantFrom(...Object.keys(header).filter((k) => k !== '__metadata__')), entryEdit), { minLength: 1, maxLength: 3 })
          .map((edits) => {
            const out: Record<string, unknown> = structuredClone(header);
            for (const [name, { field, value }] of edits) {
              const entry = (typeof out[name] === 'object' && out[name] !== null ? out[name] : {}) as Record<string, unknown>;
              if (field === 'drop') delete entry[value as string];
              else entry[field] = value;
              out[name] = entry;
            }
            return out;
          }),
      },
      { weight: 1, arbitrary: objectMutation(header, ['__metadata__', '__proto__', 'toString']) },
      { weight: 1, arbitrary: nastyJson.map((v) => v as Record<string, unknown>) },
    ),
    dataBytes: fc.oneof(fc.constant(dataBytes), fc.integer({ min: 0, max: dataBytes + 8 })),
    lengthField: fc.oneof(
      { weight: 4, arbitrary: fc.constant<'exact'>('exact') },
      { weight: 1, arbitrary: fc.constantFrom(0n, 1n, 7n, 2n ** 32n, BigInt(MAX_HEADER_BYTES) + 1n, 2n ** 53n, 2n ** 64n - 1n) },
      { weight: 1, arbitrary: fc.integer({ min: -8, max: 8 }).map((d) => ({ delta: d })) },
    ),
    textPrefix: fc.constantFrom('', ' ', '\uFEFF', '\u0000'),
  }),
);

interface RawFile {
  header: unknown;
  dataBytes: number;
  /** The 8-byte length: the JSON's own, a fixed value, or off by `delta`. */
  lengthField: 'exact' | bigint | { delta: number };
  textPrefix: string;
}

function encode(m: RawFile): Uint8Array {
  const json = new TextEncoder().encode(m.textPrefix + JSON.stringify(m.header));
  const out = new Uint8Array(8 + json.length + m.dataBytes).fill(0x3c);
  const view = new DataView(out.buffer);
  const n = m.lengthField === 'exact' ? BigInt(json.length)
    : typeof m.lengthField === 'bigint' ? m.lengthField
    : BigInt(Math.max(0, json.length + m.lengthField.delta));
  view.setBigUint64(0, n, true);
  out.set(json, 8);
  return out;
}

/** A source that records every read, so a test can check nothing big was read before the checks. */
class CountingSource extends MemorySource {
  largestRead = 0;
  override async read(offset: number, length: number): Promise<Uint8Array> {
    this.largestRead = Math.max(this.largestRead, length);
    return super.read(offset, length);
  }
}

describe('fuzz: safetensors', () => {
  it('header reader: structured mutations of valid headers, then byte damage', async () => {
    const files = fc.oneof({ weight: 3, arbitrary: mutatedHeader.map(encode) }, { weight: 1, arbitrary: validHeader.map((v) => encode({ ...v, lengthField: 'exact', textPrefix: '' })).chain(byteMutation) });
    const outcome = await fuzzParser({
      name: 'safetensors header',
      input: files,
      files: [FILE],
      seed: 0x5afe,
      parse: async (bytes: Uint8Array) => {
        const source = new CountingSource(FILE, bytes);
        try {
          return await readSafetensorsHeader(source);
        } finally {
          // The length field is checked against the limit and the file size before the header is read.
          expect(source.largestRead).toBeLessThanOrEqual(Math.min(MAX_HEADER_BYTES, Math.max(8, bytes.length - 8)));
        }
      },
    });
    expect(outcome.accepted).toBeGreaterThan(500);
    expect(outcome.rejected).toBeGreaterThan(5000);
    for (const f of ['header length', 'header', 'tensor']) expect(outcome.fields.get(f) ?? 0, f).toBeGreaterThan(0);
  });
});
