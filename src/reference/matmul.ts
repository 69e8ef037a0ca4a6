// Naive float64 matmul references.
import { rmsnormRef } from './rmsnorm';

/**
 * y[m, n] = y0[m, n] + alpha · Σ_k x[m, k] · W(n, k), where W(n, k) = w[n·K + k] for layout 'nk' (W stored [N, K],
 * the checkpoints' [out, in]) and w[k·N + n] for 'kn' (W stored [K, N]). y0 (optional, [M, N]) models accumulate
 * mode (a fused residual add with multiplier alpha).
 */
export function matmulRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  M: number,
  K: number,
  N: number,
  layout: 'nk' | 'kn',
  y0?: ArrayLike<number>,
  alpha = 1,
): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let k = 0; k < K; k++) {
        sum += x[m * K + k] * (layout === 'nk' ? w[n * K + k] : w[k * N + n]);
      }
      y[m * N + n] = (y0 ? y0[m * N + n] : 0) + alpha * sum;
    }
  }
  return y;
}

/** y[n] = Σ_k RMSNorm(x)[k] · W[n, k] for one row x [K] (a norm folded into the GEMV that follows it). */
export function rmsnormLinearRef(x: ArrayLike<number>, normW: ArrayLike<number>, eps: number, w: ArrayLike<number>, K: number, N: number): Float64Array {
  return matmulRef(rmsnormRef(x, normW, 1, K, eps), w, 1, K, N, 'nk');
}
