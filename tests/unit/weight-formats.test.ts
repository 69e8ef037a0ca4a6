import { describe, expect, it } from 'vitest';
import { bitsPerWeight, summarizeFormats } from '../../src/model/weight-formats';

describe('weight formats per tensor group', () => {
  it('groups plan entries by group and format, summing tensors, parameters and bytes', () => {
    const rows = summarizeFormats([
      { role: 'embed', dtype: 'q8_0', shape: [400, 64], byteLength: 400 * 2 * 34 },
      { role: 'q', dtype: 'q8_0', shape: [128, 64], byteLength: 128 * 2 * 34 },
      { role: 'o', dtype: 'q6_k', shape: [64, 256], byteLength: 64 * 210 },
      { role: 'expertsGateUp', dtype: 'mxfp4', shape: [16, 48, 64], byteLength: 16 * 48 * 2 * 17 },
      { role: 'expertsDown', dtype: 'f16', shape: [16, 64, 24], byteLength: 16 * 64 * 24 * 2 },
      { role: 'k', dtype: 'q8_0', shape: [64, 64], byteLength: 64 * 2 * 34 },
      { role: 'inputNorm', dtype: 'f32', shape: [64], byteLength: 256 },
    ]);
    expect(rows).toEqual([
      { group: 'embedding', format: 'q8_0', tensors: 1, params: 25600, bytes: 27200 },
      { group: 'attention', format: 'q8_0', tensors: 2, params: 12288, bytes: 13056 },
      { group: 'attention', format: 'q6_k', tensors: 1, params: 16384, bytes: 13440 },
      { group: 'routed experts', format: 'mxfp4', tensors: 1, params: 49152, bytes: 26112 },
      { group: 'routed experts', format: 'f16', tensors: 1, params: 24576, bytes: 49152 },
      { group: 'norms', format: 'f32', tensors: 1, params: 64, bytes: 256 },
    ]);
  });

  it('bits per weight', () => {
    expect([bitsPerWeight('q4_k'), bitsPerWeight('q5_k'), bitsPerWeight('q6_k'), bitsPerWeight('q8_0'), bitsPerWeight('mxfp4')]).toEqual([4.5, 5.5, 6.5625, 8.5, 4.25]);
    expect([bitsPerWeight('bf16'), bitsPerWeight('f32')]).toEqual([16, 32]);
  });
});
