// The trace container: what the writer writes reads back identical, range by range; corrupt, truncated or
// mismatched files fail on open (or on the read that meets the bad record) with the file and the field named.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { MemorySource } from '../../src/io/source';
import { encodeSafetensors } from '../../src/io/safetensors';
import { TraceFile } from '../../src/trace/reader';
import { encodeTrace } from '../../src/trace/writer';
import { TraceTimeline } from '../../src/trace/timeline';
import { METADATA_KEY, UNKNOWN } from '../../src/trace/format';
import { synthTrace } from '../support/trace';

const qwen3 = JSON.parse(readFileSync('tests/fixtures/qwen3_moe/config.json', 'utf8'));
const qwen2 = JSON.parse(readFileSync('tests/fixtures/qwen2_moe/config.json', 'utf8'));
const open = (bytes: Uint8Array, name = 'run.trace.safetensors') => TraceFile.open(new MemorySource(name, bytes));

describe('trace round trip', () => {
  const { meta, arrays } = synthTrace(qwen3, { tokens: 301, sequences: 3, weights: true, probs: true, texts: true, unknownEvery: 7 });
  const bytes = encodeTrace(meta, arrays);

  it('reads back every array identical, in ranges', async () => {
    const t = await open(bytes);
    expect(t.meta).toEqual(meta);
    expect(t.config.numExperts).toBe(16);
    expect(await t.experts(0, 301)).toEqual(arrays.experts);
    const slot = meta.moeLayers.length * meta.topK;
    expect(await t.experts(100, 50)).toEqual(arrays.experts.subarray(100 * slot, 150 * slot));
    expect((await t.experts(6, 1))[0]).toBe(UNKNOWN); // token 6 is unknown (every 7th)
    expect(await t.weights(0, 301)).toEqual(arrays.weights);
    expect(await t.router(0, 301)).toEqual(arrays.router);
    expect(await t.tokenIds(0, 301)).toEqual(arrays.tokenIds);
    expect(await t.tokenTexts(0, 301)).toEqual(arrays.tokenTexts);
    expect(await t.tokenTexts(299, 2)).toEqual(arrays.tokenTexts!.slice(299));
  });

  it('stores ids in the smallest type (u8 for 16 experts) and says what was not recorded', async () => {
    expect(bytes.byteLength).toBeLessThan(301 * 2 * 4 * (1 + 4) + 301 * 2 * 16 * 4 + 20_000);
    const bare = synthTrace(qwen3, { tokens: 5 });
    const t = await open(encodeTrace(bare.meta, bare.arrays));
    expect(t.header.tensors.get('experts')!.dtype).toBe('U8');
    expect(await t.weights(0, 5)).toBeNull();
    expect(await t.router(0, 5)).toBeNull();
    expect(await t.tokenTexts(0, 5)).toBeNull();
  });

  it('timeline state at any position equals counting from the start', async () => {
    const t = await open(bytes);
    const tl = await TraceTimeline.build(t, { interval: 16, chunkTokens: 40 });
    const L = 2, E = 16, K = 4;
    for (const p of [0, 1, 15, 16, 17, 150, 300, 301]) {
      const s = await tl.stateAt(p);
      const counts = new Uint32Array(L * E), gate = new Float64Array(L * E), known = new Uint32Array(L);
      for (let tok = 0; tok < p; tok++) {
        for (let l = 0; l < L; l++) {
          let any = false;
          for (let k = 0; k < K; k++) {
            const i = (tok * L + l) * K + k, e = arrays.experts[i];
            if (e < 0) continue;
            any = true;
            counts[l * E + e]++;
            gate[l * E + e] += arrays.weights![i];
          }
          if (any) known[l]++;
        }
      }
      expect(s.counts).toEqual(counts);
      expect(s.known).toEqual(known);
      s.gateSum!.forEach((g, i) => expect(g).toBeCloseTo(gate[i], 4));
    }
  });
});

describe('bad traces name the file and the field', () => {
  const { meta, arrays } = synthTrace(qwen3, { tokens: 20, sequences: 2 });

  it('a truncated file', async () => {
    const bytes = encodeTrace(meta, arrays);
    await expect(open(bytes.subarray(0, bytes.byteLength - 10), 'cut.safetensors')).rejects.toThrow(/^cut\.safetensors: tensor "\w+": data_offsets .* run past the end/);
  });

  it('a config with another layer count', async () => {
    const bytes = encodeTrace({ ...meta, config: { ...qwen3, num_hidden_layers: 3 } }, arrays);
    await expect(open(bytes, 'a.safetensors')).rejects.toThrow(/^a\.safetensors: field "moeLayers": records MoE layers \[0, 1\] but its config has 3 layers/);
  });

  it('a config of another model (qwen2-moe: 8 experts, dense layer 1)', async () => {
    await expect(open(encodeTrace({ ...meta, config: qwen2 }, arrays))).rejects.toThrow(/field "moeLayers"/);
  });

  it('expert ids ≥ experts, found on read with token and layer', async () => {
    const bytes = encodeTrace(meta, arrays);
    // Patch the stored byte (the writer refuses bad ids): token 2, layer 1, slot 1 → 16.
    const t0 = await open(bytes);
    const at = t0.header.tensors.get('experts')!.begin + 2 * 8 + 4 + 1;
    bytes[at] = 16;
    const t = await open(bytes, 'ids.safetensors');
    await expect(t.experts(0, 20)).rejects.toThrow('ids.safetensors: tensor "experts": token 2, MoE layer 1: expert id 16 is not below numExperts 16');
  });

  it('metadata that is not a trace, and sequences that do not tile the tokens', async () => {
    const plain = encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [1], data: new Uint8Array(4) }]);
    await expect(open(plain, 'w.safetensors')).rejects.toThrow(`w.safetensors: field "__metadata__.${METADATA_KEY}": missing`);
    const bad = JSON.stringify({ ...meta, sequences: [{ id: 'a', start: 0, length: 5, promptLength: 2 }, { id: 'b', start: 6, length: 14, promptLength: 1 }] });
    const bytes = encodeSafetensors([{ name: 'experts', dtype: 'U8', shape: [20, 2, 4], data: new Uint8Array(160) }], { [METADATA_KEY]: bad });
    await expect(open(bytes, 's.safetensors')).rejects.toThrow('s.safetensors: field "sequences[1].start": is 6');
  });

  it('a tensor of the wrong shape', async () => {
    const good = encodeTrace(meta, arrays);
    const t = await open(good);
    const json = JSON.stringify({ ...t.meta, numTokens: 19, sequences: [{ id: 'a', start: 0, length: 19, promptLength: 1 }] });
    const bytes = encodeSafetensors(
      [{ name: 'experts', dtype: 'U8', shape: [20, 2, 4], data: new Uint8Array(160) }, { name: 'token_ids', dtype: 'I32', shape: [20], data: new Uint8Array(80) }],
      { [METADATA_KEY]: json },
    );
    await expect(open(bytes, 'shape.safetensors')).rejects.toThrow('shape.safetensors: tensor "experts": shape [20, 2, 4], expected [19, 2, 4]');
  });
});
