// The router's what-if noise, reproducible on the CPU bit for bit: for (seed, layer, token position, expert), the sum
// of 12 uniform 20-bit integers from a counter-based hash (PCG's output permutation), centred and scaled by 2⁻²⁰.
// That is the Irwin–Hall approximation of N(0, 1) (mean 0, variance 1, bounded by ±6). It uses integer arithmetic
// only, so noise() in shaders/lib/moe_router_common.wgsl gives exactly this value; a Box–Muller transform would not,
// since GPUs evaluate log/cos to a few ULP (Vulkan allows 2⁻¹¹ absolute error for cos).

/** PCG hash (Jarzynski & Olano 2020) on u32. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The sum of the 12 uniform 20-bit integers behind one noise value. */
export function noiseSum(seed: number, layer: number, position: number, expert: number): number {
  let h = pcgHash((pcgHash((pcgHash((pcgHash(seed >>> 0) ^ layer) >>> 0) ^ position) >>> 0) ^ expert) >>> 0);
  let sum = 0;
  for (let i = 0; i < 12; i++) {
    h = pcgHash(h);
    sum += h >>> 12;
  }
  return sum;
}

/** Approximately N(0, 1) noise added (times σ) to router logit `expert` of the token at `position` in `layer`. */
export function routerNoise(seed: number, layer: number, position: number, expert: number): number {
  return (noiseSum(seed, layer, position, expert) - 6 * 2 ** 20) / 2 ** 20;
}
