// Naive float64 multi-head latent attention (DeepSeek-V2/V3), plain loops.
// Shapes: heads nH, latent rank R, nope / rope / value dims N, P, V; kv_b_proj W: [nH·(N + V), R] row-major.
//   q: [T, nH·(N + P)] (each head's nope part, then its rope part, RoPE already applied)
//   cache: [S, R + P] (normed latent c, then the rotated shared rope key), S >= startPos + T
// The absorbed pieces (what the GPU kernels compute) and the expanded form transformers computes (per-head K and V
// from the latent) are both here; a test checks the first composed equals the second.
export interface MlaShape {
  heads: number;
  rank: number;
  nope: number;
  rope: number;
  vDim: number;
}

/** q_lat[t, h, c] = Σ_j q_nope[t, h, j] · W[h·(N + V) + j, c]. */
export function mlaAbsorbQRef(q: ArrayLike<number>, W: ArrayLike<number>, T: number, s: MlaShape): Float64Array {
  const out = new Float64Array(T * s.heads * s.rank);
  const qHead = s.nope + s.rope;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < s.heads; h++)
      for (let c = 0; c < s.rank; c++) {
        let acc = 0;
        for (let j = 0; j < s.nope; j++) acc += q[(t * s.heads + h) * qHead + j] * W[(h * (s.nope + s.vDim) + j) * s.rank + c];
        out[(t * s.heads + h) * s.rank + c] = acc;
      }
  return out;
}

/** out[t, h·V + i] = Σ_c ctx[t, h, c] · W[h·(N + V) + N + i, c]. */
export function mlaExpandVRef(ctx: ArrayLike<number>, W: ArrayLike<number>, T: number, s: MlaShape): Float64Array {
  const out = new Float64Array(T * s.heads * s.vDim);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < s.heads; h++)
      for (let i = 0; i < s.vDim; i++) {
        let acc = 0;
        for (let c = 0; c < s.rank; c++) acc += ctx[(t * s.heads + h) * s.rank + c] * W[(h * (s.nope + s.vDim) + s.nope + i) * s.rank + c];
        out[(t * s.heads + h) * s.vDim + i] = acc;
      }
  return out;
}

function softmaxInPlace(x: Float64Array): void {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] = Math.exp(x[i] - max);
  for (let i = 0; i < x.length; i++) x[i] /= sum;
}

/**
 * The attention weights of query row t, per head: [heads, 1 + keys] (keys = startPos + t + 1), slot 0 a sink's share
 * (always 0: MLA has no sinks), slot 1 + j softmax_j(scale · (q_lat·c_j + q_rope·k_rope_j)).
 */
export function mlaWeightsRef(
  qLat: ArrayLike<number>, q: ArrayLike<number>, cache: ArrayLike<number>, t: number, startPos: number, scale: number, s: MlaShape,
): Float64Array {
  const W = s.rank + s.rope, qHead = s.nope + s.rope;
  const keys = startPos + t + 1, width = keys + 1;
  const out = new Float64Array(s.heads * width);
  for (let h = 0; h < s.heads; h++) {
    const p = new Float64Array(keys);
    for (let j = 0; j < keys; j++) {
      let dot = 0;
      for (let c = 0; c < s.rank; c++) dot += qLat[(t * s.heads + h) * s.rank + c] * cache[j * W + c];
      for (let i = 0; i < s.rope; i++) dot += q[(t * s.heads + h) * qHead + s.nope + i] * cache[j * W + s.rank + i];
      p[j] = scale * dot;
    }
    softmaxInPlace(p);
    out.set(p, h * width + 1);
  }
  return out;
}

/** ctx[t, h] = Σ_{j <= startPos + t} softmax_j(scale · (q_lat·c_j + q_rope·k_rope_j)) · c_j. */
export function mlaAttendRef(
  qLat: ArrayLike<number>, q: ArrayLike<number>, cache: ArrayLike<number>, T: number, startPos: number, scale: number, s: MlaShape,
): Float64Array {
  const W = s.rank + s.rope;
  const out = new Float64Array(T * s.heads * s.rank);
  for (let t = 0; t < T; t++) {
    const keys = startPos + t + 1, width = keys + 1;
    const p = mlaWeightsRef(qLat, q, cache, t, startPos, scale, s);
    for (let h = 0; h < s.heads; h++)
      for (let c = 0; c < s.rank; c++) {
        let acc = 0;
        for (let j = 0; j < keys; j++) acc += p[h * width + 1 + j] * cache[j * W + c];
        out[(t * s.heads + h) * s.rank + c] = acc;
      }
  }
  return out;
}

/**
 * The expanded form (transformers' DeepseekV3Attention.expand_kv, then eager attention): per position j and head h,
 * k = [W_k,h c_j | k_rope_j], v = W_v,h c_j; out[t, h] = Σ_j softmax_j(scale · q[t, h]·k_j) v_j. [T, nH·V].
 */
export function mlaExpandedRef(
  q: ArrayLike<number>, W: ArrayLike<number>, cache: ArrayLike<number>, T: number, startPos: number, scale: number, s: MlaShape,
): Float64Array {
  const width = s.rank + s.rope, qHead = s.nope + s.rope, rowsPerHead = s.nope + s.vDim;
  const S = startPos + T;
  const expand = (row: number, j: number) => {
    let acc = 0;
    for (let c = 0; c < s.rank; c++) acc += W[row * s.rank + c] * cache[j * width + c];
    return acc;
  };
  const out = new Float64Array(T * s.heads * s.vDim);
  for (let h = 0; h < s.heads; h++) {
    const kNope = Array.from({ length: S }, (_, j) => Array.from({ length: s.nope }, (_, i) => expand(h * rowsPerHead + i, j)));
    const v = Array.from({ length: S }, (_, j) => Array.from({ length: s.vDim }, (_, i) => expand(h * rowsPerHead + s.nope + i, j)));
    for (let t = 0; t < T; t++) {
      const qb = (t * s.heads + h) * qHead;
      const p = new Float64Array(startPos + t + 1);
      for (let j = 0; j < p.length; j++) {
        let dot = 0;
        for (let i = 0; i < s.nope; i++) dot += q[qb + i] * kNope[j][i];
        for (let i = 0; i < s.rope; i++) dot += q[qb + s.nope + i] * cache[j * width + s.rank + i];
        p[j] = scale * dot;
      }
      softmaxInPlace(p);
      for (let i = 0; i < s.vDim; i++) {
        let acc = 0;
        for (let j = 0; j < p.length; j++) acc += p[j] * v[j][i];
        out[(t * s.heads + h) * s.vDim + i] = acc;
      }
    }
  }
  return out;
}
