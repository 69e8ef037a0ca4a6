// Naive float64 residual add: out[i] = a[i] + scale · b[i].
export function residualRef(a: ArrayLike<number>, b: ArrayLike<number>, scale = 1): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + scale * b[i];
  return out;
}
