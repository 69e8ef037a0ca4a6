// Float64 dequantisation of llama.cpp's block formats (layouts in src/model/dtypes.ts), written from ggml-common.h's
// block structs with plain loops over bytes; independent of the WGSL decoders in shaders/lib/quant.wgsl.
// Every product here is exact in float64 (at most 25 significant bits), so rounding a value to f32 once gives what
// gguf-py's f32 arithmetic gives (one rounding at most per element).
import { QUANT_BLOCKS, bf16ToF32, f16ToF32, type TensorFormat } from '../model/dtypes';

const u16 = (b: Uint8Array, i: number): number => b[i] | (b[i + 1] << 8);
const i8 = (v: number): number => (v << 24) >> 24;
const f16At = (b: Uint8Array, i: number): number => f16ToF32(u16(b, i));

/** 2·e2m1: the values of the 16 MXFP4 codes, doubled (the scale below is halved to match, as in ggml). */
const MXFP4_DOUBLED = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/** Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at `at`. */
function scaleMinK4(b: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [b[at + j] & 63, b[at + j + 4] & 63];
  return [(b[at + j + 4] & 0x0f) | ((b[at + j - 4] >> 6) << 4), (b[at + j + 4] >> 4) | ((b[at + j] >> 6) << 4)];
}

function blockQ8_0(b: Uint8Array, at: number, out: Float64Array, o: number): void {
  const d = f16At(b, at);
  for (let i = 0; i < 32; i++) out[o + i] = d * i8(b[at + 2 + i]);
}

function blockQ4K(b: Uint8Array, at: number, out: Float64Array, o: number, fifthBit: boolean): void {
  const d = f16At(b, at);
  const dmin = f16At(b, at + 2);
  const qh = at + 16; // Q5_K only: 32 bytes of fifth bits
  const qs = fifthBit ? at + 48 : at + 16;
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(b, at + 4, j);
    for (let i = 0; i < 32; i++) {
      const byte = b[qs + 32 * (j >> 1) + i];
      let q = j & 1 ? byte >> 4 : byte & 0x0f;
      if (fifthBit) q += ((b[qh + i] >> j) & 1) << 4;
      out[o + 32 * j + i] = d * sc * q - dmin * m;
    }
  }
}

function blockQ6K(b: Uint8Array, at: number, out: Float64Array, o: number): void {
  const ql = at;
  const qh = at + 128;
  const scales = at + 192;
  const d = f16At(b, at + 208);
  // Two halves of 128 elements; in each, element 32·g + l (g < 4) takes its low nibble from ql[64·half + l (+32 for
  // g odd)] (low nibble for g < 2, high otherwise) and bits 2g..2g+1 of qh[32·half + l] as its top two bits.
  for (let half = 0; half < 2; half++) {
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) {
        const lowByte = b[ql + 64 * half + l + (g & 1 ? 32 : 0)];
        const low = g < 2 ? lowByte & 0x0f : lowByte >> 4;
        const high = (b[qh + 32 * half + l] >> (2 * g)) & 3;
        const e = 128 * half + 32 * g + l;
        out[o + e] = d * i8(b[scales + (e >> 4)]) * ((low | (high << 4)) - 32);
      }
    }
  }
}

function blockMxfp4(b: Uint8Array, at: number, out: Float64Array, o: number): void {
  const half = 2 ** (b[at] - 128); // e8m0 scale 2^(e−127), halved
  for (let i = 0; i < 16; i++) {
    out[o + i] = half * MXFP4_DOUBLED[b[at + 1 + i] & 0x0f];
    out[o + 16 + i] = half * MXFP4_DOUBLED[b[at + 1 + i] >> 4];
  }
}

/** The `count` values stored in `bytes` (a whole number of blocks for quantised formats), as exact float64. */
export function dequantRef(format: TensorFormat, bytes: Uint8Array, count: number): Float64Array {
  const out = new Float64Array(count);
  if (format === 'f32') {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  if (format === 'f16' || format === 'bf16') {
    for (let i = 0; i < count; i++) out[i] = format === 'f16' ? f16At(bytes, 2 * i) : bf16ToF32(u16(bytes, 2 * i));
    return out;
  }
  const block = QUANT_BLOCKS[format];
  if (count % block.elements !== 0 || bytes.byteLength < (count / block.elements) * block.bytes) {
    throw new Error(`dequantRef: ${count} ${format} values need ${(count / block.elements) * block.bytes} bytes of whole blocks`);
  }
  for (let k = 0; k < count / block.elements; k++) {
    const at = k * block.bytes;
    const o = k * block.elements;
    if (format === 'q8_0') blockQ8_0(bytes, at, out, o);
    else if (format === 'q4_k') blockQ4K(bytes, at, out, o, false);
    else if (format === 'q5_k') blockQ4K(bytes, at, out, o, true);
    else if (format === 'q6_k') blockQ6K(bytes, at, out, o);
    else blockMxfp4(bytes, at, out, o);
  }
  return out;
}
