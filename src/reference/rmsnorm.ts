// Naive float64 RMSNorm: out[r, i] = x[r, i] / sqrt(mean_j x[r, j]² + eps) · w[i]
export function rmsnormRef(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, cols: number, eps: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let sumSq = 0;
    for (let i = 0; i < cols; i++) sumSq += x[r * cols + i] * x[r * cols + i];
    const inv = 1 / Math.sqrt(sumSq / cols + eps);
    for (let i = 0; i < cols; i++) out[r * cols + i] = x[r * cols + i] * inv * w[i];
  }
  return out;
}
