// The GGUF reader, config, load plan and tokenizer on files gguf-py wrote (tests/fixtures/gguf-*), and its errors.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFileError } from '../../src/io/errors';
import { readGgufHeader } from '../../src/io/gguf';
import { findGguf, openGguf } from '../../src/io/gguf-model';
import { openModel } from '../../src/io/model';
import { nodeFolder } from '../../src/io/node-source';
import { MemorySource, memoryFolder } from '../../src/io/source';
import { streamLoadPlan, type LoadPlan, type PlanEntry } from '../../src/io/weights';
import type { ModelFolder } from '../../src/io/source';
import type { TensorFormat } from '../../src/model/dtypes';
import { dequantRef } from '../../src/reference/dequant';

const FIXTURES = join(__dirname, '..', 'fixtures');
const FAMILIES = ['mixtral', 'qwen3_moe', 'olmoe', 'gpt_oss', 'deepseek_v2'] as const;
const ggufBytes = (family: string) => new Uint8Array(readFileSync(join(FIXTURES, `gguf-${family}`, 'model.gguf')));

/** A config with every non-integer number rounded to 6 significant digits (f32 metadata against JSON decimals). */
function f32Rounded(v: unknown): unknown {
  if (typeof v === 'number') return Number.isInteger(v) ? v : Number(v.toPrecision(6));
  if (Array.isArray(v)) return v.map(f32Rounded);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, f32Rounded(x)]));
  return v;
}

/** Every entry's bytes, as streamLoadPlan delivers them. */
async function entryBytes(folder: ModelFolder, plan: LoadPlan): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  await streamLoadPlan({ folder }, plan, (entry, at, bytes) => {
    const buf = out.get(entry.name) ?? new Uint8Array(Math.ceil(entry.byteLength / 4) * 4);
    buf.set(bytes, at);
    out.set(entry.name, buf);
  });
  return out;
}

/** Largest difference a format's rounding allows, relative to the largest |value| of the tensor. */
const ROUNDING: Record<TensorFormat, number> = { f32: 0, f16: 1e-3, bf16: 8e-3, q8_0: 8e-3, mxfp4: 0.25, q4_k: 0.1, q5_k: 0.05, q6_k: 0.02 };

describe('GGUF files written by gguf-py', () => {
  for (const family of FAMILIES) {
    it(`${family}: config equals the transformers config.json's`, async () => {
      const gguf = await openGguf(await nodeFolder(join(FIXTURES, `gguf-${family}`)), 'model.gguf');
      const hf = await openModel(await nodeFolder(join(FIXTURES, family)));
      // GGUF stores the epsilon as f32 (the engine uses it as f32 either way), and DeepSeek's YaRN mscale as the f32
      // 0.1·mscale_all_dim: those (and the softmax scale made from it) agree to f32 rounding.
      const { source: _a, weightDtype: _b, rmsNormEps: epsGguf, ...fromGguf } = gguf.config;
      const { source: _c, weightDtype: _d, rmsNormEps: epsJson, ...fromJson } = hf.config;
      expect(f32Rounded(fromGguf)).toEqual(f32Rounded(fromJson));
      expect(epsGguf).toBe(Math.fround(epsJson));
      expect(gguf.header.version).toBe(3);
      expect(gguf.plan.unused).toEqual([]);
    });

    it(`${family}: every plan entry holds the checkpoint's tensor in canonical order (within its format's rounding)`, async () => {
      const ggufFolder = await nodeFolder(join(FIXTURES, `gguf-${family}`));
      const gguf = await openGguf(ggufFolder, 'model.gguf');
      const hf = await openModel(await nodeFolder(join(FIXTURES, family)));
      const got = await entryBytes(ggufFolder, gguf.plan);
      const want = await entryBytes(hf.folder, hf.plan);
      const formats = new Set<TensorFormat>();
      for (const e of gguf.plan.entries) {
        const ref = hf.plan.entries.find((x) => x.name === e.name) as PlanEntry;
        const n = e.shape.reduce((a, b) => a * b, 1);
        const a = dequantRef(e.dtype, got.get(e.name)!, n);
        const b = dequantRef(ref.dtype, want.get(e.name)!, n);
        let maxRef = 0;
        let maxErr = 0;
        for (let i = 0; i < n; i++) { maxRef = Math.max(maxRef, Math.abs(b[i])); maxErr = Math.max(maxErr, Math.abs(a[i] - b[i])); }
        expect(maxErr, `${e.name} (${e.dtype})`).toBeLessThanOrEqual(ROUNDING[e.dtype] * maxRef);
        formats.add(e.dtype);
      }
      expect(formats.size).toBeGreaterThanOrEqual(3);
    });

    it(`${family}: the tokenizer from tokenizer.ggml.* gives the golden's ids`, async () => {
      const gguf = await openGguf(await nodeFolder(join(FIXTURES, `gguf-${family}`)), 'model.gguf');
      const golden = JSON.parse(readFileSync(join(FIXTURES, `gguf-${family}`, 'golden.json'), 'utf8'));
      expect(gguf.tokenizer.encode(golden.prompt)).toEqual(golden.input_ids);
      expect(gguf.tokenizer.decode(golden.input_ids, { skipSpecialTokens: true })).toBe(golden.prompt);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Damaged files: positions found in the qwen3_moe fixture's own header.

/** Byte offset just after the GGUF string `name` (a tensor's info fields, or a metadata key's value type). */
function tensorInfoAt(file: Uint8Array, name: string): number {
  const key = new TextEncoder().encode(name);
  for (let i = 8; i + key.length < file.length; i++) {
    if (key.every((b, j) => file[i + j] === b) && new DataView(file.buffer).getBigUint64(i - 8, true) === BigInt(key.length)) return i + key.length;
  }
  throw new Error(`no tensor info for ${name}`);
}

const open = (bytes: Uint8Array) => openGguf(memoryFolder({ 'model.gguf': bytes }), 'model.gguf');

describe('GGUF errors name the file and the field', () => {
  const good = ggufBytes('qwen3_moe');

  it('a truncated file', async () => {
    // Cut anywhere in the header (every 37th byte) or the data: an error naming the file and the field or tensor.
    const dataStart = (await readGgufHeader(new MemorySource('model.gguf', good))).dataStart;
    const cuts = [...Array(Math.ceil(dataStart / 37)).keys()].map((i) => i * 37).concat([dataStart + 1, (dataStart + good.length) >> 1]);
    for (const cut of cuts) {
      await expect(open(good.slice(0, cut)), `cut at ${cut}`).rejects.toThrow(/^model\.gguf: (field|tensor) "[^"]+": /);
    }
    await expect(open(good.slice(0, 100))).rejects.toThrow('model.gguf: field "metadata_kv_count": 24 entries cannot fit in the file');
    await expect(open(good.slice(0, 5000))).rejects.toThrow('model.gguf: field "tokenizer.ggml.token_type": array of 400 elements cannot fit in the 71 header bytes left');
    await expect(open(good.slice(0, good.length - 1))).rejects.toThrow(/model\.gguf: tensor "output\.weight": Q8_0 × \[400, 64\] needs 27200 bytes .* past the end of the file/);
  });

  it('an unknown quant type, and a known one the engine does not read', async () => {
    const bad = good.slice();
    const at = tensorInfoAt(bad, 'blk.0.attn_v.weight');
    const view = new DataView(bad.buffer);
    view.setUint32(at + 4 + 2 * 8, 99, true);
    await expect(open(bad)).rejects.toThrow('model.gguf: tensor "blk.0.attn_v.weight": unknown ggml type 99');
    view.setUint32(at + 4 + 2 * 8, 2, true); // Q4_0: same 32-element blocks, 18 bytes instead of 34: fits
    await expect(open(bad)).rejects.toThrow('model.gguf: tensor "blk.0.attn_v.weight": type Q4_0 is not supported');
  });

  it('a tensor whose size disagrees with its type and shape', async () => {
    const bad = good.slice();
    const at = tensorInfoAt(bad, 'blk.0.attn_q.weight');
    new DataView(bad.buffer).setBigUint64(at + 4 + 8, 256n, true); // ne[1]: 128 → 256 rows, into the next tensor
    await expect(open(bad)).rejects.toThrow(/model\.gguf: tensor "blk\.0\.attn_q\.weight": Q8_0 × \[256, 64\] needs 17408 bytes but tensor ".*" starts 8704 bytes after it/);
    new DataView(bad.buffer).setBigUint64(at + 4, 48n, true); // ne[0] 64 → 48: not whole 32-element blocks
    await expect(open(bad)).rejects.toThrow('model.gguf: tensor "blk.0.attn_q.weight": Q8_0 × [256, 48]: a row of 48 is not a whole number of 32-element blocks');
  });

  it('an unsupported architecture', async () => {
    const bad = good.slice();
    const arch = new TextEncoder().encode('qwen3moe');
    const i = bad.findIndex((_, j) => arch.every((b, k) => bad[j + k] === b));
    bad.set(new TextEncoder().encode('mamba2xx'), i);
    await expect(open(bad)).rejects.toThrow('model.gguf: field "general.architecture": "mamba2xx" is not a supported architecture');
  });

  it('not a GGUF file, or another version', async () => {
    await expect(readGgufHeader(new MemorySource('x.gguf', new TextEncoder().encode('{"a": 1}    ')))).rejects.toThrow('x.gguf: field "magic": not a GGUF file');
    const v1 = good.slice(0, 64);
    new DataView(v1.buffer).setUint32(4, 1, true);
    await expect(readGgufHeader(new MemorySource('x.gguf', v1))).rejects.toThrow('x.gguf: field "version": version 1 is not supported');
  });

  it('counts and lengths the file cannot hold are refused before allocation', async () => {
    const bad = good.slice(0, 4096);
    new DataView(bad.buffer).setBigUint64(16, 1n << 40n, true); // metadata_kv_count
    await expect(readGgufHeader(new MemorySource('m.gguf', bad))).rejects.toThrow('m.gguf: field "metadata_kv_count": 1099511627776 entries cannot fit');
    const tokens = tensorInfoAt(good, 'tokenizer.ggml.tokens'); // the value type follows the key, as a tensor's info follows its name
    const big = good.slice();
    new DataView(big.buffer).setBigUint64(tokens + 8, 1n << 45n, true); // the token array's count (after value and element types)
    await expect(readGgufHeader(new MemorySource('m.gguf', big))).rejects.toThrow(/m\.gguf: field "tokenizer\.ggml\.tokens": array of 35184372088832 elements cannot fit/);
  });
});


// ---------------------------------------------------------------------------------------------------------------
// Split GGUFs: gguf-olmoe written by gguf-py in three parts (tools/make_gguf_fixtures.py split).

describe('split GGUF models', () => {
  const SPLIT = join(FIXTURES, 'gguf-olmoe-split');
  const parts = [1, 2, 3].map((i) => `model-0000${i}-of-00003.gguf`);
  const partBytes = (i: number) => new Uint8Array(readFileSync(join(SPLIT, parts[i])));

  it('open as one model: the same config, and every entry the same bytes as the single file, read from all parts', async () => {
    const folder = await nodeFolder(SPLIT);
    const file = await findGguf(folder);
    expect(file).toBe(parts[0]);
    const split = await openGguf(folder, file!);
    const singleFolder = await nodeFolder(join(FIXTURES, 'gguf-olmoe'));
    const single = await openGguf(singleFolder, 'model.gguf');
    const { source: _a, ...a } = split.config;
    const { source: _b, ...b } = single.config;
    expect(a).toEqual(b);
    expect(split.plan.entries.map((e) => [e.name, e.dtype, e.shape])).toEqual(single.plan.entries.map((e) => [e.name, e.dtype, e.shape]));
    expect(new Set(split.plan.entries.flatMap((e) => e.parts.map((p) => p.file)))).toEqual(new Set(parts));
    expect(await entryBytes(folder, split.plan)).toEqual(await entryBytes(singleFolder, single.plan));
    expect(split.tokenizer.encode('The expert said')).toEqual(single.tokenizer.encode('The expert said'));
  });

  it('a missing part is named, whichever part was given', async () => {
    const folder = memoryFolder({ [parts[0]]: partBytes(0), [parts[2]]: partBytes(2) }, 'drop');
    await expect(findGguf(folder)).rejects.toThrow('model-00002-of-00003.gguf: missing: part 2 of the 3-part GGUF model model (drop has 2)');
    await expect(findGguf(memoryFolder({ [parts[1]]: partBytes(1) }))).rejects.toThrow(/model-00001-of-00003\.gguf: missing: part 1 of the 3-part/);
  });

  it('parts out of order, or unrelated GGUF files side by side, are refused', async () => {
    const swapped = memoryFolder({ [parts[0]]: partBytes(0), [parts[1]]: partBytes(2), [parts[2]]: partBytes(1) });
    await expect(openGguf(swapped, parts[0])).rejects.toThrow('model-00002-of-00003.gguf: field "split.no": is 2 (part 3), but the file name says part 2');
    const mixed = memoryFolder({ 'a.gguf': ggufBytes('olmoe'), 'b.gguf': ggufBytes('mixtral') }, 'two');
    await expect(findGguf(mixed)).rejects.toThrow('a.gguf: one GGUF model per folder is supported; two has 2 GGUF files that are not the parts of one split model');
  });
});
