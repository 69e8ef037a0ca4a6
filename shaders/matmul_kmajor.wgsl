// Tiled, register-blocked matmul with k-contiguous shared tiles; same interface, bindings and overrides as
// shaders/matmul.wgsl:  y[M, N] (+)= x[M, K] · Wᵀ (W stored [N, K], W_NK)  or  x · W (W stored [K, N]).
// x and y are f32; W is f32, f16 or bf16 as raw 32-bit words (lib/weights), decoded in registers; accumulation f32.
//
// Difference from matmul.wgsl: x and W tiles stay k-contiguous in shared memory ([m][k] and [n][k], rows padded by
// one vec4 so that rows are 80 bytes apart and a quarter-warp's 16-byte loads hit distinct banks), so a 16-byte
// global load of x (or of a W row) is stored with one 16-byte store, and the next tile is loaded into registers
// while the current one is multiplied. Thread (tx, ty) owns rows ty + WG_M·i and columns tx + WG_N·j (i, j < 8);
// per 4 k it loads 8 x and 8 W vec4s and does 256 FMAs. On the H100 this wins on mid-sized grids (M = 128…512 at
// K = 4096: +20–25%) and loses on large ones (30.2 vs 40.9 TFLOP/s at 4096³), see docs/benchmarks.md.
// TILE_K ≤ 16. W stored [K, N] is transposed into [n][k] element by element when the tile is stored.
// It keeps its own store / multiply / K loop rather than lib/matmul_core's: the shared layout ([m][k], [n][k] with a
// padding vec4), the thread-to-output map (strided, not 4-blocked) and the prefetching loop are what make it differ.
//
// Loads: with ALIGNED, 16 bytes at a time (K % 4 == 0 and the W row length a multiple of 4 for f32 or 8 for
// f16/bf16); otherwise element by element. Any M, N, K: every load and store is bounds-checked.
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
override TILE_K: u32 = 16u;      // k per shared-memory tile: 8 or 16
override W_NK: bool = true;      // W stored [N, K] (true) or [K, N]
override ALIGNED: bool = true;   // 16-byte loads (see header)
override ACCUMULATE: bool = false; // y += x·W instead of y = x·W

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

const MAX_KQ: u32 = 5u; // vec4s per shared row: TILE_K / 4 ≤ 4, plus one of padding (rows 80 B apart: no bank conflicts)
var<workgroup> xs_tile: array<array<vec4<f32>, MAX_KQ>, TILE_M>; // [m][k / 4] x values, k contiguous
var<workgroup> ws_tile: array<array<vec4<f32>, MAX_KQ>, TILE_N>; // [n][k / 4] W values, k contiguous

var<private> x_stage: array<vec4<f32>, MAX_SLOTS>; // this thread's part of the next x tile, in registers
var<private> w_stage: array<vec4<f32>, MAX_SLOTS>; // this thread's part of the next W tile, decoded
var<private> acc: array<f32, 64>;                  // [8 rows][8 columns] outputs of this thread

// #include "lib/matmul_dense"

// Registers → shared memory, k contiguous: [m][k/4] and [n][k/4].
fn store_tile(lid: u32) {
  for (var i = 0u; i < X_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    xs_tile[u / (TILE_K / 4u)][u % (TILE_K / 4u)] = x_stage[i];
  }
  for (var i = 0u; i < W_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    if (u >= W_TOTAL) { break; } // f16/bf16 with a shallow tile: fewer units than threads
    if (W_NK) {
      let row = u / (TILE_K / UK);
      let c = u % (TILE_K / UK);
      for (var s = 0u; s < W_SLOTS; s++) {
        ws_tile[row][c * W_SLOTS + s] = w_stage[i * W_SLOTS + s];
      }
    } else {
      let row = u / (TILE_N / UK); // k
      let c = u % (TILE_N / UK);
      for (var j = 0u; j < UK; j++) {
        ws_tile[c * UK + j][row >> 2u][row & 3u] = w_stage[i * W_SLOTS + (j >> 2u)][j & 3u];
      }
    }
  }
}

// acc += the TILE_K products of the shared tiles. Thread (tx, ty) owns rows ty + WG_M·i and columns tx + WG_N·j.
fn multiply_tile(tx: u32, ty: u32) {
  for (var kq = 0u; kq < TILE_K / 4u; kq++) {
    var a: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) { a[i] = xs_tile[ty + WG_M * i][kq]; }
    for (var j = 0u; j < 8u; j++) {
      let b = ws_tile[tx + WG_N * j][kq];
      for (var i = 0u; i < 8u; i++) {
        var s = acc[i * 8u + j];
        s = fma(a[i].x, b.x, s);
        s = fma(a[i].y, b.y, s);
        s = fma(a[i].z, b.z, s);
        s = fma(a[i].w, b.w, s);
        acc[i * 8u + j] = s;
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

  load_tile(lid, m0, n0, 0u);
  for (var t = 0u; t < tiles; t++) {
    workgroupBarrier(); // everyone is done reading the previous tile
    store_tile(lid);
    workgroupBarrier();
    if (t + 1u < tiles) { load_tile(lid, m0, n0, (t + 1u) * TILE_K); }
    multiply_tile(tx, ty);
  }

  let N = params.N;
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + ty + WG_M * i;
    if (m >= params.M) { continue; }
    for (var j = 0u; j < 8u; j++) {
      let n = n0 + tx + WG_N * j;
      if (n < N) {
        let e = m * N + n;
        let v = acc[i * 8u + j];
        if (ACCUMULATE) { y[e >> 2u][e & 3u] = y[e >> 2u][e & 3u] + v; } else { y[e >> 2u][e & 3u] = v; }
      }
    }
  }
}
