// Naive float64 rotary embedding ("rotate_half"), for x: [tokens, heads, headDim] contiguous.
// Angle of token t, pair i: (startPos + t) · invFreq[i]. With `f32Angles` the product is rounded to f32 first, as
// transformers forms it; cos, sin and the rotation are float64. Without it the angle is exact (float64), which shows
// how far any f32 implementation (transformers included) is from the ideal rotation at large positions.
// `interleaved` pairs elements (2i, 2i + 1) (DeepSeek's complex form) instead of (i, i + headDim/2).
import { rmsnormRef } from './rmsnorm';

export function ropeRef(
  x: ArrayLike<number>,
  tokens: number,
  heads: number,
  headDim: number,
  startPos: number,
  invFreq: ArrayLike<number>,
  opts: { f32Angles: boolean; scaling?: number; interleaved?: boolean },
): Float64Array {
  const half = headDim / 2;
  const scaling = opts.scaling ?? 1;
  const out = new Float64Array(tokens * heads * headDim);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const exact = (startPos + t) * invFreq[i];
        const angle = opts.f32Angles ? Math.fround(exact) : exact;
        const c = Math.cos(angle) * scaling;
        const s = Math.sin(angle) * scaling;
        const a = base + (opts.interleaved ? 2 * i : i);
        const b = opts.interleaved ? a + 1 : a + half;
        const x1 = x[a];
        const x2 = x[b];
        out[a] = x1 * c - x2 * s;
        out[b] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

export interface RopeAppendRefInput {
  /** [tokens, heads·d + 2·kvHeads·d]: q, k, v projections of each token, back to back. */
  qkv: ArrayLike<number>;
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  startPos: number;
  invFreq: ArrayLike<number>;
  scaling?: number;
  /** [heads·d + 2·kvHeads·d] q, k and v biases. */
  bias?: ArrayLike<number>;
  /** q then k weights: [d] each ('head') or [heads·d] then [kvHeads·d] ('all'). */
  qkNorm?: { mode: 'head' | 'all'; weight: ArrayLike<number>; eps: number };
}

/**
 * What a step hands attention after the fused q/k/v projection, in float64 (angles rounded to f32 as transformers
 * forms them): q and k = RoPE(RMSNorm(projection + bias)), v = projection + bias; q [tokens, heads·d], k and v
 * [tokens, kvHeads·d] (the rows appended to the caches at positions startPos …).
 */
export function ropeAppendRef(r: RopeAppendRefInput): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const { tokens: T, heads: nH, kvHeads: nKV, headDim: d } = r;
  const widths = [nH * d, nKV * d, nKV * d];
  const stride = widths[0] + widths[1] + widths[2];
  const parts: Float64Array[] = widths.map((w, p) => {
    const out = new Float64Array(T * w);
    const first = p === 0 ? 0 : p === 1 ? widths[0] : widths[0] + widths[1];
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < w; c++) out[t * w + c] = r.qkv[t * stride + first + c] + (r.bias ? r.bias[first + c] : 0);
    }
    return out;
  });
  const norm = r.qkNorm;
  if (norm) {
    const perHead = norm.mode === 'head';
    for (const p of [0, 1]) {
      const w = widths[p];
      const weight = Array.from(norm.weight).slice(p === 0 ? 0 : perHead ? d : widths[0]);
      const cols = perHead ? d : w;
      parts[p] = rmsnormRef(parts[p], weight, (T * w) / cols, cols, norm.eps);
    }
  }
  const rope = (x: Float64Array, heads: number) =>
    ropeRef(x, T, heads, d, r.startPos, r.invFreq, { f32Angles: true, scaling: r.scaling });
  return { q: rope(parts[0], nH), k: rope(parts[1], nKV), v: parts[2] };
}
