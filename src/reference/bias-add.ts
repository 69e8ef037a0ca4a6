// Naive float64 row-broadcast bias add: out[t, i] = x[t, i] + bias[i]
export function biasAddRef(x: ArrayLike<number>, bias: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let t = 0; t < rows; t++) for (let i = 0; i < cols; i++) out[t * cols + i] = x[t * cols + i] + bias[i];
  return out;
}
