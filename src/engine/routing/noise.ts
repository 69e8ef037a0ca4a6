// The router's what-if noise, reproducible on the CPU: a standard normal keyed by (seed, layer, token position,
// expert), from a counter-based hash (PCG's output permutation) and Box–Muller. The same integers as
// gaussian() in shaders/moe_router.wgsl; the GPU then evaluates log/cos/sqrt in f32, so values agree to f32
// precision (about 1e-6 relative), not bit for bit.

/** PCG hash (Jarzynski & Olano 2020) on u32. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The two 24-bit uniforms behind one noise value: u1 in (0, 1], u2 in [0, 1). */
export function noiseUniforms(seed: number, layer: number, position: number, expert: number): [number, number] {
  const base = pcgHash((pcgHash((pcgHash(seed >>> 0) ^ layer) >>> 0) ^ position) >>> 0);
  const a = pcgHash((base ^ (2 * expert)) >>> 0);
  const b = pcgHash((base ^ (2 * expert + 1)) >>> 0);
  return [((a >>> 8) + 1) / 16777216, (b >>> 8) / 16777216];
}

/** N(0, 1) sample added (times σ) to router logit `expert` of the token at `position` in `layer`. */
export function routerNoise(seed: number, layer: number, position: number, expert: number): number {
  const [u1, u2] = noiseUniforms(seed, layer, position, expert);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
