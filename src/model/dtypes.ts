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

/** Decode raw little-endian tensor bytes of `dtype` into f32 values. */
export function decodeToF32(bytes: Uint8Array, dtype: WeightDtype): Float32Array {
  const n = bytes.byteLength / bytesPerElement(dtype);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (dtype === 'f32') for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  else if (dtype === 'bf16') for (let i = 0; i < n; i++) out[i] = bf16ToF32(view.getUint16(i * 2, true));
  else for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
  return out;
}
