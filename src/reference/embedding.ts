// Naive float64 embedding gather: out[t, c] = scale · table[min(ids[t], vocab - 1), c].
export function embeddingRef(
  ids: ArrayLike<number>,
  table: ArrayLike<number>,
  vocab: number,
  hidden: number,
  scale = 1,
): Float64Array {
  const out = new Float64Array(ids.length * hidden);
  for (let t = 0; t < ids.length; t++) {
    const row = Math.min(ids[t], vocab - 1); // out-of-range ids read the last row, as the kernel does
    for (let c = 0; c < hidden; c++) out[t * hidden + c] = scale * table[row * hidden + c];
  }
  return out;
}
