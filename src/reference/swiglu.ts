// Naive float64 SwiGLU over a fused [T, 2I] buffer: out[t, i] = g / (1 + e^-g) · u, g = x[t, i], u = x[t, I + i].
export function swigluRef(x: ArrayLike<number>, tokens: number, inter: number): Float64Array {
  const out = new Float64Array(tokens * inter);
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < inter; i++) {
      const g = x[t * 2 * inter + i];
      const u = x[t * 2 * inter + inter + i];
      out[t * inter + i] = (g / (1 + Math.exp(-g))) * u;
    }
  }
  return out;
}
