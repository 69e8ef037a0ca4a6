// The tuned core of the register-blocked tiled matmuls: the dense matmul (matmul.wgsl) and the grouped expert matmuls
// (moe_expert_up.wgsl, moe_expert_down.wgsl) run this same K loop, shared-memory layout and inner step; they differ
// only in where operand units live (their x_span / w_span prologue for lib/matmul_stage: the dense matmul reads x rows
// m0 + r, the expert kernels gather x rows through the dispatch plan's row keys and offset W into the tile's expert)
// and in their epilogues (plain or accumulating store; SwiGLU pairing; per-expert bias and row store).
//
// Tiling: WG_N × WG_M threads compute a TILE_M × TILE_N block (TILE_M = 8·WG_M, TILE_N = 8·WG_N). Each thread owns
// 8 × 8 outputs as two 4-row groups TILE_M/2 apart times two 4-column groups TILE_N/2 apart (row i of tile_row:
// acc[2i] and acc[2i + 1]), so that every shared-memory read of a warp is a broadcast (x) or 16 consecutive vec4s (W):
// no bank conflicts on the 16-byte loads of the inner loop (4 loads per 64 FMAs).
// K advances TILE_K at a time through one shared-memory tile per operand, both transposed to [k][m] and [k][n] (f32,
// already decoded): load into registers (lib/matmul_stage), barrier, store, barrier, multiply. On the H100 this
// single-buffered loop beat double buffering with a register-staged prefetch (35.0 vs 32.3 TFLOP/s at 4096³,
// TILE_K 8), most likely because the staged registers cost more occupancy than the prefetch hid; with k written out
// as literals (multiply_tile) it reaches 40.9 TFLOP/s, 0.81× cuBLAS f32 (docs/benchmarks.md). The expert kernels
// used to double-buffer (28.6 TFLOP/s on Mixtral's T = 4096 layer): their tiles are the same size, their threads hold
// the same staging registers and accumulators, and double buffering would also double the shared memory (32 KiB at
// TILE_K 16, fewer resident workgroups) and rule out literal k (the buffer offset is a run-time value), so they run
// the dense loop; `bench-moe --tune` prints their rate beside the dense matmul's at the same FLOPs.
// In a partial block each thread multiplies only its 4-row groups that hold rows (multiply_all), so warps whose rows
// are all empty skip their products: every expert's last plan tile is partial (half empty on average), where the
// dense matmul at M = k·T has one partial block at most.
// Shared rows are declared 128 floats wide (MAX_TILE_VEC4 vec4s) so that the thread-dependent index is the inner,
// constant-sized dimension: the bounds clamp WebGPU adds to it is loop-invariant and the k offset folds into the
// load's address.
//
// The including shader declares the bindings x and w, the overrides WG_M, WG_N (≤ 16), TILE_K (8 or 16), W_NK and
// ALIGNED, WEIGHT_DTYPE (lib/weights or lib/quant), and x_span / w_span / w_row_length (lib/matmul_stage).
// Shared memory: 2 · TILE_K · 512 bytes (16 KiB at TILE_K 16).
// #include "lib/matmul_stage"

const MAX_TILE_VEC4: u32 = 32u;  // shared row width in vec4s: TILE_M, TILE_N ≤ 128
const MAX_SLOTS: u32 = 8u;       // staging registers (vec4) per thread per operand
override TILE_M: u32 = WG_M * 8u;
override TILE_N: u32 = WG_N * 8u;
override WG_SIZE: u32 = WG_M * WG_N;
// Weights per 16-byte unit: 4 f32 or 8 f16/bf16 (or 8 of a quantised sub-block).
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

// acc += the outer product of shared row k (x column k times W row k). Thread (tx, ty) owns rows 4ty .. 4ty+3 and
// TILE_M/2 + 4ty .., columns 4tx .. 4tx+3 and TILE_N/2 + 4tx ..; acc[2i] / acc[2i + 1] are row i's two column groups.
// !both: only the first 4-row group (the second holds no rows).
fn multiply_k(tx: u32, ty: u32, k: u32, both: bool) {
  let a0 = xs_tile[k][ty];
  let b0 = ws_tile[k][tx];
  let b1 = ws_tile[k][WG_N + tx];
  acc[0] += a0.x * b0;  acc[1] += a0.x * b1;
  acc[2] += a0.y * b0;  acc[3] += a0.y * b1;
  acc[4] += a0.z * b0;  acc[5] += a0.z * b1;
  acc[6] += a0.w * b0;  acc[7] += a0.w * b1;
  if (both) {
    let a1 = xs_tile[k][WG_M + ty];
    acc[8] += a1.x * b0;  acc[9] += a1.x * b1;
    acc[10] += a1.y * b0; acc[11] += a1.y * b1;
    acc[12] += a1.z * b0; acc[13] += a1.z * b1;
    acc[14] += a1.w * b0; acc[15] += a1.w * b1;
  }
}

// acc += the TILE_K outer products of the shared tiles. Every k is a literal: once the driver inlines multiply_k,
// the bounds clamp WebGPU puts on the k index folds away and each shared-memory load is a register plus a constant
// offset (a loop over k left that to the driver's unrolling, and cost ~10% at 4096³). `both` is a literal at each
// call of multiply_tile, so that it folds too: two specialised copies, chosen once per tile.
fn multiply_tile(tx: u32, ty: u32, both: bool) {
  multiply_k(tx, ty, 0u, both);
  multiply_k(tx, ty, 1u, both);
  multiply_k(tx, ty, 2u, both);
  multiply_k(tx, ty, 3u, both);
  multiply_k(tx, ty, 4u, both);
  multiply_k(tx, ty, 5u, both);
  multiply_k(tx, ty, 6u, both);
  multiply_k(tx, ty, 7u, both);
  if (TILE_K > 8u) {
    multiply_k(tx, ty, 8u, both);
    multiply_k(tx, ty, 9u, both);
    multiply_k(tx, ty, 10u, both);
    multiply_k(tx, ty, 11u, both);
    multiply_k(tx, ty, 12u, both);
    multiply_k(tx, ty, 13u, both);
    multiply_k(tx, ty, 14u, both);
    multiply_k(tx, ty, 15u, both);
  }
}

// acc = this thread's products over the reduction length K for the block whose first x row and W row are m0 and n0
// in x_span / w_span terms, of which the first `rows` (or more) are inside. K must be uniform over the workgroup (the
// loop holds barriers). A thread's 4-row group past `rows` is not multiplied (its acc stays 0 and is not stored).
fn multiply_all(lid: u32, tx: u32, ty: u32, m0: u32, n0: u32, K: u32, rows: u32) {
  let tiles = (K + TILE_K - 1u) / TILE_K;
  let first = tile_row(ty, 0u) < rows;
  let second = tile_row(ty, 4u) < rows;
  for (var t = 0u; t < tiles; t++) {
    load_tile(lid, m0, n0, t * TILE_K);
    workgroupBarrier(); // everyone is done multiplying the previous tile
    store_tile(lid);
    workgroupBarrier();
    if (second) { multiply_tile(tx, ty, true); } else if (first) { multiply_tile(tx, ty, false); }
  }
}

// Row of acc[2i], acc[2i + 1] (i < 8) relative to the block's first row: i < 4 in the first 4-row group.
fn tile_row(ty: u32, i: u32) -> u32 {
  return select(WG_M * 4u + ty * 4u + (i - 4u), ty * 4u + i, i < 4u);
}
