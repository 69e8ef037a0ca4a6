// Tiled, register-blocked matmul:  y[M, N] (+)= x[M, K] · Wᵀ  with W stored [N, K] (W_NK, checkpoint [out, in])
//                                  y[M, N] (+)= x[M, K] · W   with W stored [K, N] (!W_NK).
// x and y are f32; W is f32, f16 or bf16 as raw 32-bit words (lib/weights), decoded in registers; accumulation f32.
//
// Tiling and K loop: lib/matmul_core (TILE_M = 8·WG_M by TILE_N = 8·WG_N outputs per workgroup, 8 × 8 per thread,
// TILE_K-deep single-buffered shared tiles), the same core as the grouped expert matmuls; this shader supplies the
// dense operand locations (lib/matmul_dense) and the store.
// Mid-sized grids do better with shaders/matmul_kmajor.wgsl (same interface).
//
// Loads: with ALIGNED, each thread moves 16 bytes at a time (4 x values along k; 4 f32 or 8 f16/bf16 weights along
// the weight row). ALIGNED needs K % 4 == 0 and a weight row length (K for W_NK, N otherwise) that is a multiple of
// 4 (f32) or 8 (f16/bf16); without it the same tiles are filled element by element. Any M, N, K work: every load
// and store is bounds-checked. y is stored 16 bytes at a time when N % 4 == 0.
// Buffers are viewed as vec4 arrays: x, W and y must be allocated with their sizes rounded up to 16 bytes.
// Block-quantised W (lib/quant; W_NK, ALIGNED, K a multiple of the block): each 8-weight unit is decoded from its
// 32-element sub-block's scales into the same f32 staging registers.
// #include "lib/quant"

struct Params {
  M: u32, // rows of x and y
  N: u32, // columns of y (output features)
  K: u32, // columns of x (input features)
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;        // [M, K] f32, row-major
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;        // [N, K] (W_NK) or [K, N], WEIGHT_DTYPE words
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;  // [M, N] f32, row-major

override WG_M: u32 = 16u;        // threads along M (≤ 16)
override WG_N: u32 = 16u;        // threads along N (≤ 16)
override TILE_K: u32 = 16u;      // k per shared-memory tile: 8 or 16 (1 KiB of shared memory per k)
override W_NK: bool = true;      // W stored [N, K] (true) or [K, N]
override ALIGNED: bool = true;   // 16-byte loads (see header)
override ACCUMULATE: bool = false; // y += x·W instead of y = x·W

// #include "lib/matmul_dense"
// #include "lib/matmul_core"

// y[m, n .. n+3] (+)= v, bounds-checked.
fn store_y(m: u32, n: u32, v: vec4<f32>) {
  let N = params.N;
  if (m >= params.M || n >= N) { return; }
  let base = m * N + n;
  if ((N & 3u) == 0u) {
    let i = base >> 2u;
    if (ACCUMULATE) { y[i] = y[i] + v; } else { y[i] = v; }
  } else {
    for (var j = 0u; j < 4u; j++) {
      let e = base + j;
      if (n + j < N) {
        if (ACCUMULATE) { y[e >> 2u][e & 3u] = y[e >> 2u][e & 3u] + v[j]; } else { y[e >> 2u][e & 3u] = v[j]; }
      }
    }
  }
}

@compute @workgroup_size(WG_N, WG_M)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let m0 = wg.y * TILE_M;
  let n0 = wg.x * TILE_N;
  let tx = local.x;
  let ty = local.y;
  multiply_all(lid, tx, ty, m0, n0, params.K, params.M - m0);

  for (var i = 0u; i < 8u; i++) {
    let m = m0 + tile_row(ty, i);
    store_y(m, n0 + tx * 4u, acc[2u * i]);
    store_y(m, n0 + WG_N * 4u + tx * 4u, acc[2u * i + 1u]);
  }
}
