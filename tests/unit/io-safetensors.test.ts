import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MissingFileError, ModelFileError } from '../../src/io/errors';
import {
  encodeSafetensors, openCheckpoint, readSafetensorsHeader, readTensor, readTensorChunks, SAFETENSORS_DTYPE_BYTES,
  weightDtypeOf,
} from '../../src/io/safetensors';
import type { TensorToWrite } from '../../src/io/safetensors';
import { MemorySource, memoryFolder } from '../../src/io/source';

const u8 = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + seed * 11) & 0xff);

/** A safetensors file from a hand-written header object and data section (for malformed headers). */
function rawFile(header: unknown, data: Uint8Array, declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, declaredLength ?? json.byteLength, true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

const parse = (name: string, file: Uint8Array) => readSafetensorsHeader(new MemorySource(name, file));

describe('safetensors header', () => {
  const arbTensor = fc.record({
    dtype: fc.constantFrom(...Object.keys(SAFETENSORS_DTYPE_BYTES)),
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
    seed: fc.nat(),
  });

  it('tensor and dtype names never reach Object.prototype', async () => {
    const names = ['toString', '__proto__', 'constructor', 'hasOwnProperty'];
    const file = encodeSafetensors(names.map((name, i) => ({ name, dtype: 'F32', shape: [1], data: u8(4, i) })), { __proto__: 'x' });
    const h = await parse('m.safetensors', file);
    expect([...h.tensors.keys()].sort()).toEqual([...names].sort());
    expect(h.tensors.get('__proto__')!.dataOffsets).toEqual([4, 8]);
    await expect(parse('m.safetensors', rawFile({ a: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, u8(4)))).rejects.toThrow(
      'm.safetensors: tensor "a": unknown dtype "toString"',
    );
    expect(() => weightDtypeOf({ ...h.tensors.get('toString')!, dtype: 'constructor' })).toThrow('dtype constructor is not supported');
  });

  it('round-trips writer → parser for any tensors and metadata', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== '__metadata__'), arbTensor), {
          selector: ([n]) => n,
          maxLength: 6,
        }),
        fc.option(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 })), { nil: undefined }),
        async (list, metadata) => {
          const tensors: TensorToWrite[] = list.map(([name, t]) => ({
            name, dtype: t.dtype, shape: t.shape,
            data: u8(t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_BYTES[t.dtype], t.seed),
          }));
          const file = encodeSafetensors(tensors, metadata);
          const header = await parse('x.safetensors', file);
          expect(header.headerLength % 8).toBe(0);
          expect(header.metadata).toEqual(metadata ?? {});
          expect([...header.tensors.keys()].sort()).toEqual(tensors.map((t) => t.name).sort());
          const ckpt = await openCheckpoint(memoryFolder({ 'model.safetensors': file }));
          for (const t of tensors) {
            const info = header.tensors.get(t.name)!;
            expect(info.dtype).toBe(t.dtype);
            expect(info.shape).toEqual(t.shape);
            expect(file.subarray(info.begin, info.end)).toEqual(t.data);
            expect(await readTensor(ckpt, t.name, { chunkBytes: 3 })).toEqual(t.data);
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('streams a tensor in bounded chunks with progress', async () => {
    const data = u8(4 * 250);
    const ckpt = await openCheckpoint(memoryFolder({ 'model.safetensors': encodeSafetensors([
      { name: 'a', dtype: 'F32', shape: [3], data: u8(12, 5) },
      { name: 'w', dtype: 'F32', shape: [10, 25], data },
    ]) }));
    const progress: [number, number][] = [];
    const chunks: Uint8Array[] = [];
    for await (const c of readTensorChunks(ckpt, 'w', { chunkBytes: 64, onProgress: (d, t) => progress.push([d, t]) })) chunks.push(c);
    expect(chunks.map((c) => c.byteLength)).toEqual([...new Array(15).fill(64), 40]);
    expect(progress[0]).toEqual([0, 1000]);
    expect(progress[progress.length - 1]).toEqual([1000, 1000]);
    expect(progress.every(([d], i) => i === 0 || d > progress[i - 1][0])).toBe(true);
    expect(await readTensor(ckpt, 'w')).toEqual(data);
    await expect(readTensor(ckpt, 'nope')).rejects.toThrow('model.safetensors: tensor "nope": missing');
  });

  it('only F32, F16 and BF16 reach the engine; others are a clear error at use', async () => {
    const file = encodeSafetensors([
      { name: 'ids', dtype: 'I64', shape: [2], data: u8(16) },
      { name: 'w', dtype: 'BF16', shape: [2], data: u8(4) },
    ]);
    const h = await parse('model.safetensors', file);
    expect(weightDtypeOf(h.tensors.get('w')!)).toBe('bf16');
    expect(() => weightDtypeOf(h.tensors.get('ids')!)).toThrow(
      'model.safetensors: tensor "ids": dtype I64 is not supported (the engine reads F32, F16 and BF16)',
    );
  });

  describe('bad files: every error names the file and the field', () => {
    const good = encodeSafetensors([
      { name: 'model.norm.weight', dtype: 'F32', shape: [4], data: u8(16) },
      { name: 'model.layers.3.mlp.gate.weight', dtype: 'F32', shape: [2, 4], data: u8(32) },
    ]);
    const F = 'model-00002-of-00003.safetensors';

    it('truncated file', async () => {
      await expect(parse(F, good.subarray(0, good.byteLength - 5))).rejects.toThrow(
        new RegExp(`^${F}: tensor "model.layers.3.mlp.gate.weight": data_offsets \\[16, 48\\] run past the end of the file \\(size ${good.byteLength - 5};`),
      );
      await expect(parse(F, good.subarray(0, 20))).rejects.toThrow(`${F}: header length: `);
      await expect(parse(F, good.subarray(0, 5))).rejects.toThrow(`${F}: header length: file is 5 bytes`);
    });

    it('bad header length', async () => {
      const header = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
      await expect(parse(F, rawFile(header, u8(4), 1e9))).rejects.toThrow(`${F}: header length: 1000000000 bytes is implausibly large`);
      await expect(parse(F, rawFile(header, u8(4), 5000))).rejects.toThrow(`${F}: header length: 5000 bytes run past the end of the file`);
      await expect(parse(F, rawFile(header, u8(4), 1))).rejects.toThrow(`${F}: header length: 1 is too small`);
      const huge = rawFile(header, u8(4));
      new DataView(huge.buffer).setUint32(4, 1, true); // high word: > 4 GiB
      await expect(parse(F, huge)).rejects.toThrow(`${F}: header length: 4294967`);
      // A length that cuts the JSON short.
      await expect(parse(F, rawFile(header, u8(4), 10))).rejects.toThrow(`${F}: header: invalid JSON`);
    });

    it('offsets past the end, overlapping, or disagreeing with shape × dtype', async () => {
      const t = (data_offsets: unknown, shape: unknown = [2], dtype: unknown = 'F32') => ({ dtype, shape, data_offsets });
      await expect(parse(F, rawFile({ 'model.layers.3.mlp.gate.weight': t([0, 12], [3]) }, u8(8)))).rejects.toThrow(
        `${F}: tensor "model.layers.3.mlp.gate.weight": data_offsets [0, 12] run past the end of the file (size `,
      );
      await expect(parse(F, rawFile({ a: t([0, 8]), b: t([4, 12]) }, u8(12)))).rejects.toThrow(
        `${F}: tensor "b": data_offsets [4, 12] overlap tensor "a" [0, 8]`,
      );
      await expect(parse(F, rawFile({ b: t([4, 12]), a: t([0, 8]) }, u8(12)))).rejects.toThrow(/tensor "b": data_offsets \[4, 12\] overlap tensor "a"/);
      await expect(parse(F, rawFile({ a: t([0, 8], [3]) }, u8(12)))).rejects.toThrow(
        `${F}: tensor "a": data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12`,
      );
      await expect(parse(F, rawFile({ a: t([0, 8], [2], 'BF16') }, u8(8)))).rejects.toThrow('shape [2] of BF16 needs 4');
      await expect(parse(F, rawFile({ a: t([8, 4]) }, u8(8)))).rejects.toThrow(`${F}: tensor "a": data_offsets [8,4] is not a pair`);
      await expect(parse(F, rawFile({ a: t([0]) }, u8(8)))).rejects.toThrow(`${F}: tensor "a": data_offsets [0] is not a pair`);
      await expect(parse(F, rawFile({ a: t([0, 8], [2, -1]) }, u8(8)))).rejects.toThrow(`${F}: tensor "a": shape [2,-1] is not a list`);
      await expect(parse(F, rawFile({ a: t([0, 8], [2], 'Q4_K') }, u8(8)))).rejects.toThrow(`${F}: tensor "a": unknown dtype "Q4_K"`);
      await expect(parse(F, rawFile({ a: t([0, 8], [2], 7) }, u8(8)))).rejects.toThrow(`${F}: tensor "a": dtype is missing`);
      await expect(parse(F, rawFile({ a: 5 }, u8(8)))).rejects.toThrow(`${F}: tensor "a": header entry is not an object`);
      await expect(parse(F, rawFile('[1, 2]', u8(8)))).rejects.toThrow(`${F}: header: is not a JSON object`);
      await expect(parse(F, rawFile({ __metadata__: { a: 1 } }, u8(0)))).rejects.toThrow(`${F}: field "__metadata__.a": is not a string`);
      // Empty tensors take no bytes and overlap nothing; adjacent tensors are fine.
      const ok = await parse(F, rawFile({ e: t([4, 4], [0]), a: t([0, 8]), b: t([8, 16]) }, u8(16)));
      expect(ok.tensors.size).toBe(3);
    });
  });
});

describe('checkpoints', () => {
  const shard = (names: string[], seed: number) =>
    encodeSafetensors(names.map((name, i) => ({ name, dtype: 'F16', shape: [3], data: u8(6, seed + i) })));
  const index = (map: Record<string, string>) => JSON.stringify({ metadata: { total_size: 1 }, weight_map: map });
  const S1 = 'model-00001-of-00002.safetensors', S2 = 'model-00002-of-00002.safetensors';

  it('sharded through model.safetensors.index.json', async () => {
    const folder = memoryFolder({
      [S1]: shard(['a', 'b'], 1), [S2]: shard(['c'], 9),
      'model.safetensors.index.json': index({ a: S1, b: S1, c: S2 }),
    });
    const ckpt = await openCheckpoint(folder);
    expect(ckpt.sharded).toBe(true);
    expect(ckpt.entryFile).toBe('model.safetensors.index.json');
    expect([...ckpt.tensors.keys()].sort()).toEqual(['a', 'b', 'c']);
    expect(ckpt.tensors.get('c')!.file).toBe(S2);
    expect(await readTensor(ckpt, 'c')).toEqual(u8(6, 9));
    expect(await readTensor(ckpt, 'b')).toEqual(u8(6, 2));
  });

  it('an index referencing a missing shard names the index, the tensor and the shard', async () => {
    const folder = memoryFolder({ [S1]: shard(['a'], 1), 'model.safetensors.index.json': index({ a: S1, c: S2 }) }, '/models/m');
    await expect(openCheckpoint(folder)).rejects.toThrow(
      `model.safetensors.index.json: field "weight_map["c"]": shard "${S2}" (1 tensor) is not in /models/m`,
    );
  });

  it('an index listing a tensor its shard lacks names the shard and the tensor', async () => {
    const folder = memoryFolder({ [S1]: shard(['a'], 1), 'model.safetensors.index.json': index({ a: S1, zz: S1 }) });
    await expect(openCheckpoint(folder)).rejects.toThrow(`${S1}: tensor "zz": listed in model.safetensors.index.json but not in this shard`);
  });

  it('malformed indexes', async () => {
    const idx = (text: string) => openCheckpoint(memoryFolder({ [S1]: shard(['a'], 1), 'model.safetensors.index.json': text }));
    await expect(idx('{"metadata": {}}')).rejects.toThrow('model.safetensors.index.json: field "weight_map": missing');
    await expect(idx('{"weight_map": {}}')).rejects.toThrow('model.safetensors.index.json: field "weight_map": is empty');
    await expect(idx('{"weight_map": {"a": "../etc/passwd"}}')).rejects.toThrow('field "weight_map["a"]": "../etc/passwd" is not a plain file name');
    // Found by fuzzing: config.json was read as a shard and blamed for not being one.
    await expect(idx('{"weight_map": {"a": "config.json"}}')).rejects.toThrow('field "weight_map["a"]": "config.json" is not a .safetensors file');
    await expect(idx('{"weight_map": ')).rejects.toThrow(/^model\.safetensors\.index\.json: JSON syntax: invalid JSON/);
  });

  it('a bad shard is reported by its own name', async () => {
    const bad = shard(['c'], 9).subarray(0, 30);
    const folder = memoryFolder({ [S1]: shard(['a'], 1), [S2]: bad, 'model.safetensors.index.json': index({ a: S1, c: S2 }) });
    await expect(openCheckpoint(folder)).rejects.toThrow(new RegExp(`^${S2}: `));
    await expect(openCheckpoint(folder)).rejects.toThrow(ModelFileError);
  });

  it('no weights at all', async () => {
    await expect(openCheckpoint(memoryFolder({ 'config.json': '{}' }, 'dir'))).rejects.toThrow(MissingFileError);
    await expect(openCheckpoint(memoryFolder({ 'config.json': '{}' }, 'dir'))).rejects.toThrow(
      'model.safetensors: not found in dir (no model.safetensors and no model.safetensors.index.json',
    );
  });
});
