// Weight dtypes as stored in GPU memory (see shaders/lib/weights.wgsl) and host-side conversions.

export type WeightDtype = 'f32' | 'f16' | 'bf16';

/** Value of the WGSL `override WEIGHT_DTYPE`. */
export const WEIGHT_DTYPE_CODE: Record<WeightDtype, number> = { f32: 0, f16: 1, bf16: 2 };

export const bytesPerElement = (dtype: WeightDtype): number => (dtype === 'f32' ? 4 : 2);

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f32 → bf16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0];
}

/** f32 → IEEE half bits, round to nearest even, with subnormals and overflow to ±inf. */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Pack f32 values into the GPU word layout of `dtype` (a Uint32Array of whole words; odd counts padded with 0).
 * Also returns the values as the GPU will see them after rounding (for references).
 */
export function packWeights(values: Float32Array, dtype: WeightDtype): { words: Uint32Array; rounded: Float32Array } {
  if (dtype === 'f32') return { words: new Uint32Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)), rounded: values };
  const toBits = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  const fromBits = dtype === 'bf16' ? bf16ToF32 : f16ToF32;
  const halves = new Uint16Array(values.length + (values.length & 1));
  const rounded = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    halves[i] = toBits(values[i]);
    rounded[i] = fromBits(halves[i]);
  }
  return { words: new Uint32Array(halves.buffer), rounded };
}

/** Decode raw little-endian tensor bytes of `dtype` into f32 values (block-quantised formats decode on the GPU). */
export function decodeToF32(bytes: Uint8Array, dtype: TensorFormat): Float32Array {
  if (isQuantFormat(dtype)) throw new Error(`decodeToF32: ${dtype} tensors are decoded inside the kernels, not on the CPU`);
  const n = bytes.byteLength / bytesPerElement(dtype);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (dtype === 'f32') for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  else if (dtype === 'bf16') for (let i = 0; i < n; i++) out[i] = bf16ToF32(view.getUint16(i * 2, true));
  else for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Block-quantised formats (llama.cpp's ggml types), kept packed in GPU memory and decoded inside the kernels
// (shaders/lib/quant.wgsl). Layouts, per block of `blockElements` consecutive elements along a row (K):
//   q8_0  34 B / 32:  f16 d, 32 × int8 q                                   w = d·q
//   q4_k 144 B / 256: f16 d, f16 dmin, 12 B packed 6-bit (scale, min) × 8, 128 B nibbles
//                     sub-block j (32 elements) uses byte 32·(j/2) + i of the nibbles, low nibble for even j
//                                                                            w = (d·sc_j)·q − dmin·m_j
//   q5_k 176 B / 256: as q4_k, then 32 B high bits (bit j of byte i is element 32·j + i's fifth bit) before the nibbles
//   q6_k 210 B / 256: 128 B low nibbles, 64 B high 2-bit pairs, 16 × int8 scales (one per 16 elements), f16 d
//                                                                            w = (d·sc_{i/16})·(q − 32)
//   mxfp4 17 B / 32:  e8m0 exponent e, 16 B nibbles (element i < 16 low nibble of byte i, element 16 + i the high)
//                     w = 2^(e−128) · kvalue[q], kvalue = 2·e2m1 = 0, 1, 2, 3, 4, 6, 8, 12 and their negatives
// (ggml-common.h block_q8_0 / block_q4_K / block_q5_K / block_q6_K / block_mxfp4; gguf-py quants.py dequantize_blocks.)

export type QuantFormat = 'q8_0' | 'q4_k' | 'q5_k' | 'q6_k' | 'mxfp4';
/** Any format a weight tensor can have in GPU memory. */
export type TensorFormat = WeightDtype | QuantFormat;

export interface BlockShape {
  /** Elements per block (along a row). */
  elements: number;
  /** Bytes per block. */
  bytes: number;
}

export const QUANT_BLOCKS: Readonly<Record<QuantFormat, BlockShape>> = {
  q8_0: { elements: 32, bytes: 34 },
  q4_k: { elements: 256, bytes: 144 },
  q5_k: { elements: 256, bytes: 176 },
  q6_k: { elements: 256, bytes: 210 },
  mxfp4: { elements: 32, bytes: 17 },
};

/** Value of the WGSL `override WEIGHT_DTYPE` for every format (0–2 dense, 3+ block-quantised). */
export const FORMAT_CODE: Readonly<Record<TensorFormat, number>> = {
  ...WEIGHT_DTYPE_CODE, q8_0: 3, q4_k: 4, q5_k: 5, q6_k: 6, mxfp4: 7,
};

export const isQuantFormat = (f: TensorFormat): f is QuantFormat => Object.hasOwn(QUANT_BLOCKS, f);

/**
 * Bytes of a row-major tensor whose last dimension (the row, K) is `shape[shape.length - 1]`; null when a quantised
 * row is not a whole number of blocks.
 */
export function tensorBytes(format: TensorFormat, shape: readonly number[]): number | null {
  const elements = shape.reduce((a, b) => a * b, 1);
  if (!isQuantFormat(format)) return elements * bytesPerElement(format);
  const block = QUANT_BLOCKS[format];
  const row = shape.length ? shape[shape.length - 1] : 1;
  if (row % block.elements !== 0) return null;
  return (elements / block.elements) * block.bytes;
}
