// Where the dense matmuls' operands live (matmul.wgsl, matmul_kmajor.wgsl), for lib/matmul_stage:
// x [M, K] and W [N, K] (W_NK) or [K, N], shapes from the uniform `params`.
// #include "lib/matmul_stage"

fn x_span(m: u32, k: u32) -> vec2<u32> {
  let K = params.K;
  return vec2<u32>(m * K + k, select(0u, min(4u, K - k), m < params.M && k < K));
}

fn w_span(n: u32, k: u32) -> vec2<u32> {
  let K = params.K;
  let N = params.N;
  let inside = n < N && k < K;
  if (W_NK) {
    return vec2<u32>(n * K + k, select(0u, min(UK, K - k), inside));
  }
  return vec2<u32>(k * N + n, select(0u, min(UK, N - n), inside));
}

fn w_row_length() -> u32 {
  return select(params.N, params.K, W_NK);
}
