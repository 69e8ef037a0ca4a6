import { describe, expect, it } from 'vitest';
import { dequantRef } from '../../src/reference/dequant';
import { f32ToBf16, f32ToF16 } from '../../src/model/dtypes';
import { FIXTURE_FORMATS, blockFixture, hfMxfp4Fixture } from '../support/gguf-blocks';
import { repackHfMxfp4 } from '../../src/io/mxfp4';

/** Index of the first element whose f32 bits differ, or -1. */
function firstBitMismatch(got: ArrayLike<number>, want: Float32Array): number {
  const g = new Float32Array(got);
  const gb = new Uint32Array(g.buffer);
  const wb = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < want.length; i++) if (gb[i] !== wb[i]) return i;
  return g.length === want.length ? -1 : want.length;
}

describe('dequantRef equals gguf-py bit for bit', () => {
  for (const format of FIXTURE_FORMATS) {
    it(format, () => {
      const f = blockFixture(format);
      const ref = dequantRef(format, f.bytes, f.rows * f.cols);
      const bad = firstBitMismatch(ref, f.values);
      expect(bad, `${format}: element ${bad}: ${ref[bad]} vs gguf-py ${f.values[bad]}`).toBe(-1);
      // Not a degenerate fixture: many distinct values, some negative.
      expect(new Set(f.values).size).toBeGreaterThan(f.values.length / 16);
      expect(f.values.some((v) => v < 0)).toBe(true);
    });
  }

  it('f16, bf16 and f32 tensors', () => {
    const values = [1.5, -2.25, 65504, 2 ** -24, -0.0009765625];
    const f16 = new Uint8Array(new Uint16Array(values.map(f32ToF16)).buffer);
    const bf16 = new Uint8Array(new Uint16Array(values.map(f32ToBf16)).buffer);
    expect(Array.from(dequantRef('f16', f16, values.length))).toEqual(values);
    expect(Array.from(dequantRef('bf16', bf16, 2))).toEqual([1.5, -2.25]);
    expect(Array.from(dequantRef('f32', new Uint8Array(new Float32Array(values).buffer), 5))).toEqual(values.map(Math.fround));
  });

  it('Hugging Face gpt-oss MXFP4 blocks, repacked, equal transformers\' dequantisation', () => {
    const f = hfMxfp4Fixture();
    const ref = dequantRef('mxfp4', repackHfMxfp4('hf', f.blocks, f.scales, f.count), 32 * f.count);
    const bad = firstBitMismatch(ref, f.values);
    expect(bad, `element ${bad}: ${ref[bad]} vs transformers ${f.values[bad]}`).toBe(-1);
    // Read without the repack (HF bytes as if GGUF order), most values differ: the order matters.
    const raw = new Uint8Array(17 * f.count);
    for (let b = 0; b < f.count; b++) { raw[17 * b] = f.scales[b]; raw.set(f.blocks.subarray(16 * b, 16 * b + 16), 17 * b + 1); }
    expect(firstBitMismatch(dequantRef('mxfp4', raw, 32 * f.count), f.values)).toBeGreaterThanOrEqual(0);
    expect(() => repackHfMxfp4('x.safetensors', f.blocks, f.scales, f.count + 1)).toThrow(/^x\.safetensors: MXFP4 blocks/);
  });

  it('refuses a byte count that is not whole blocks', () => {
    expect(() => dequantRef('q4_k', new Uint8Array(143), 256)).toThrow(/whole blocks/);
  });
});
