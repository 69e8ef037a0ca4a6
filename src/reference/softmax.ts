// Naive float64 row softmax of x / temperature, max-subtracted.
export function softmaxRef(x: ArrayLike<number>, rows: number, cols: number, temperature = 1): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, x[r * cols + j] / temperature);
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += Math.exp(x[r * cols + j] / temperature - max);
    for (let j = 0; j < cols; j++) out[r * cols + j] = Math.exp(x[r * cols + j] / temperature - max) / sum;
  }
  return out;
}
