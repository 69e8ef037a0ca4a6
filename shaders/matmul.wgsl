// Tiled, register-blocked matmul:  y[M, N] (+)= x[M, K] · Wᵀ  with W stored [N, K] (W_NK, checkpoint [out, in])
//                                  y[M, N] (+)= x[M, K] · W   with W stored [K, N] (!W_NK).
// x and y are f32; W is f32, f16 or bf16 as raw 32-bit words (lib/weights), decoded in registers; accumulation f32.
//
// Tiling: one workgroup of WG_N × WG_M threads computes a TILE_M × TILE_N block of y (TILE_M = 8·WG_M,
// TILE_N = 8·WG_N). Each thread owns 8 × 8 outputs laid out as two 4-row groups TILE_M/2 apart times two
// 4-column groups TILE_N/2 apart, so that every shared-memory read of a warp is a broadcast (x) or 16 consecutive
// vec4s (W): no bank conflicts on the 16-byte loads of the inner loop (4 loads per 64 FMAs).
// K advances TILE_K at a time through one shared-memory tile per operand, both transposed to [k][m] and [k][n] (f32,
// already decoded): load from global memory, barrier, store, barrier, multiply. On the H100 this single-buffered
// loop beat double buffering with a register-staged prefetch (35.0 vs 32.3 TFLOP/s at 4096³, TILE_K 8), most likely
// because the staged registers cost more occupancy than the prefetch hid; with k written out as literals (below) it
// reaches 40.9 TFLOP/s, 0.81× cuBLAS f32 (docs/benchmarks.md).
// Shared rows are declared 128 floats wide (MAX_TILE_VEC4 vec4s) so that the thread-dependent index is the inner,
// constant-sized dimension: the bounds clamp WebGPU adds to it is loop-invariant and the k offset folds into the
// load's address. Mid-sized grids do better with shaders/matmul_kmajor.wgsl (same interface).
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

const MAX_TILE_VEC4: u32 = 32u;  // shared row width in vec4s: TILE_M, TILE_N ≤ 128
const MAX_SLOTS: u32 = 8u;       // staging registers (vec4) per thread per operand
override TILE_M: u32 = WG_M * 8u;
override TILE_N: u32 = WG_N * 8u;
override WG_SIZE: u32 = WG_M * WG_N;
// Weights per 16-byte unit: 4 f32 or 8 f16/bf16.
override UK: u32 = select(8u, 4u, WEIGHT_DTYPE == 0u);
// Per thread and tile: x units (4 values each), W units (UK values each), W staging vec4s.
override X_UNITS: u32 = TILE_M * TILE_K / (4u * WG_SIZE);
override W_TOTAL: u32 = TILE_N * TILE_K / UK; // W units per tile
override W_UNITS: u32 = (W_TOTAL + WG_SIZE - 1u) / WG_SIZE;
override W_SLOTS: u32 = UK / 4u;

var<workgroup> xs_tile: array<array<vec4<f32>, MAX_TILE_VEC4>, TILE_K>; // [k][m / 4] x values
var<workgroup> ws_tile: array<array<vec4<f32>, MAX_TILE_VEC4>, TILE_K>; // [k][n / 4] W values

var<private> x_stage: array<vec4<f32>, MAX_SLOTS>; // this thread's part of the x tile, in registers
var<private> w_stage: array<vec4<f32>, MAX_SLOTS>; // this thread's part of the W tile, decoded
var<private> acc: array<vec4<f32>, 16>;            // [8 rows][2 column groups] outputs of this thread

// #include "lib/matmul_dense"

// Registers → shared memory, transposed to [k][m] and [k][n].
fn store_tile(lid: u32) {
  for (var i = 0u; i < X_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    let row = u / (TILE_K / 4u);
    let c = u % (TILE_K / 4u);
    for (var j = 0u; j < 4u; j++) {
      xs_tile[c * 4u + j][row >> 2u][row & 3u] = x_stage[i][j];
    }
  }
  for (var i = 0u; i < W_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    if (u >= W_TOTAL) { break; } // f16/bf16 with a shallow tile: fewer units than threads
    if (W_NK) {
      let row = u / (TILE_K / UK);
      let c = u % (TILE_K / UK);
      for (var j = 0u; j < UK; j++) {
        ws_tile[c * UK + j][row >> 2u][row & 3u] = w_stage[i * W_SLOTS + (j >> 2u)][j & 3u];
      }
    } else {
      let row = u / (TILE_N / UK);
      let c = u % (TILE_N / UK);
      for (var s = 0u; s < W_SLOTS; s++) {
        ws_tile[row][c * W_SLOTS + s] = w_stage[i * W_SLOTS + s];
      }
    }
  }
}

// #include "lib/matmul_outer"

// acc += the TILE_K outer products of the shared tiles. Every k is a literal: once the driver inlines multiply_k,
// the bounds clamp WebGPU puts on the k index folds away and each shared-memory load is a register plus a constant
// offset (a loop over k left that to the driver's unrolling, and cost ~10% at 4096³).
fn multiply_tile(tx: u32, ty: u32) {
  multiply_k(tx, ty, 0u);
  multiply_k(tx, ty, 1u);
  multiply_k(tx, ty, 2u);
  multiply_k(tx, ty, 3u);
  multiply_k(tx, ty, 4u);
  multiply_k(tx, ty, 5u);
  multiply_k(tx, ty, 6u);
  multiply_k(tx, ty, 7u);
  if (TILE_K > 8u) {
    multiply_k(tx, ty, 8u);
    multiply_k(tx, ty, 9u);
    multiply_k(tx, ty, 10u);
    multiply_k(tx, ty, 11u);
    multiply_k(tx, ty, 12u);
    multiply_k(tx, ty, 13u);
    multiply_k(tx, ty, 14u);
    multiply_k(tx, ty, 15u);
  }
}

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
  let tiles = (params.K + TILE_K - 1u) / TILE_K;

  for (var t = 0u; t < tiles; t++) {
    load_tile(lid, m0, n0, t * TILE_K);
    workgroupBarrier(); // everyone is done multiplying the previous tile
    store_tile(lid);
    workgroupBarrier();
    multiply_tile(tx, ty);
  }

  for (var i = 0u; i < 8u; i++) {
    let m = m0 + select(WG_M * 4u + ty * 4u + (i - 4u), ty * 4u + i, i < 4u);
    store_y(m, n0 + tx * 4u, acc[2u * i]);
    store_y(m, n0 + WG_N * 4u + tx * 4u, acc[2u * i + 1u]);
  }
}
