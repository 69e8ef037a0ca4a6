// Hugging Face gpt-oss MXFP4 checkpoints (`*_blocks` [..., G, 16] uint8 and `*_scales` [..., G] uint8 e8m0) → GGUF
// MXFP4 blocks (src/model/dtypes.ts), which the kernels decode. Both hold 32 e2m1 codes and one exponent per block;
// they differ in where the codes sit: HF puts element 2j in the low nibble of byte j and 2j + 1 in the high one
// (transformers' convert_moe_packed_tensors), GGUF element i < 16 in the low nibble of byte i and 16 + i in the high.
// The values are the same: HF's lut[code] · 2^(s − 127) is ggml's 2·e2m1[code] · 2^(s − 128).
import { ModelFileError } from './errors';

/** `count` blocks: HF `blocks` (16 bytes each) and `scales` (1 byte each) → 17-byte GGUF MXFP4 blocks. */
export function repackHfMxfp4(file: string, blocks: Uint8Array, scales: Uint8Array, count: number): Uint8Array {
  if (blocks.byteLength !== 16 * count || scales.byteLength !== count) {
    throw new ModelFileError(file, null, `MXFP4 blocks of ${blocks.byteLength} bytes and scales of ${scales.byteLength} do not make ${count} blocks of 32`);
  }
  const out = new Uint8Array(17 * count);
  const codes = new Uint8Array(32);
  for (let b = 0; b < count; b++) {
    for (let j = 0; j < 16; j++) {
      const byte = blocks[16 * b + j];
      codes[2 * j] = byte & 0x0f;
      codes[2 * j + 1] = byte >> 4;
    }
    out[17 * b] = scales[b];
    for (let i = 0; i < 16; i++) out[17 * b + 1 + i] = codes[i] | (codes[16 + i] << 4);
  }
  return out;
}
