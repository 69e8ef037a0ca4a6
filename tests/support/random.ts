// Seeded random problem generators: the same seed gives the same problem on every machine.
import { mulberry32 } from '../../src/bench/operands';

/** mulberry32: small, fast, good enough for test data. Returns uniforms in [0, 1). */
export const rng = mulberry32;

/** Standard normal samples (Box–Muller). */
export function gaussian(seed: number): () => number {
  const u = rng(seed);
  return () => {
    const a = Math.max(u(), 1e-12);
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * u());
  };
}

/** n values ~ N(0, scale²), never all zero. */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const g = gaussian(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = g() * scale;
  return out;
}

/** Sizes that are not multiples of any tile: small, odd, just past powers of two. */
export const AWKWARD_SIZES = [1, 7, 33, 257] as const;
