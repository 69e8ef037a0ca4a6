// The tiled core of the grouped expert matmuls (moe_expert_up.wgsl, moe_expert_down.wgsl): the register-blocked
// scheme of shaders/matmul.wgsl, per plan tile. WG_N × WG_M threads multiply TILE_M = 8·WG_M rows of x by
// TILE_N = 8·WG_N staged weight rows; each thread owns 8 × 8 products as two 4-row groups TILE_M/2 apart times two
// 4-column groups TILE_N/2 apart (row i: acc[2i] and acc[2i + 1]), so every shared-memory read of a warp is a
// broadcast (x) or consecutive vec4s (weights). K advances TILE_K at a time through double-buffered shared memory (the
// next slice is read into registers by lib/matmul_stage before the current one is multiplied); both operands sit
// transposed ([k][m], [k][n]) as f32.
// The including shader declares the bindings x and w, the overrides WG_M, WG_N, TILE_K (a multiple of 8) and ALIGNED,
// and x_span / w_span (lib/matmul_stage).
// #include "lib/matmul_stage"

const W_NK: bool = true;         // weight rows are [n, k]
const MAX_TILE_VEC4: u32 = 32u;  // shared row width in vec4s: TILE_M, TILE_N ≤ 128
const MAX_SLOTS: u32 = 8u;       // staging registers (vec4) per thread per operand
override TILE_M: u32 = WG_M * 8u;
override TILE_N: u32 = WG_N * 8u;
override WG_SIZE: u32 = WG_M * WG_N;
override UK: u32 = select(8u, 4u, WEIGHT_DTYPE == 0u); // weights per 16-byte unit
override X_UNITS: u32 = TILE_M * TILE_K / (4u * WG_SIZE);
override W_TOTAL: u32 = TILE_N * TILE_K / UK;
override W_UNITS: u32 = (W_TOTAL + WG_SIZE - 1u) / WG_SIZE;
override W_SLOTS: u32 = UK / 4u;
override STAGED_K: u32 = 2u * TILE_K;

var<workgroup> xs_tile: array<array<vec4<f32>, MAX_TILE_VEC4>, STAGED_K>; // [buffer·TILE_K + k][m / 4]
var<workgroup> ws_tile: array<array<vec4<f32>, MAX_TILE_VEC4>, STAGED_K>; // [buffer·TILE_K + k][n / 4]

var<private> x_stage: array<vec4<f32>, MAX_SLOTS>;
var<private> w_stage: array<vec4<f32>, MAX_SLOTS>;
var<private> acc: array<vec4<f32>, 16>; // [8 rows][2 column groups]

// Registers → shared buffer `buf`, transposed to [k][m] and [k][n].
fn store_tile(lid: u32, buf: u32) {
  let kb = buf * TILE_K;
  for (var i = 0u; i < X_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    let row = u / (TILE_K / 4u);
    let c = u % (TILE_K / 4u);
    for (var j = 0u; j < 4u; j++) { xs_tile[kb + c * 4u + j][row >> 2u][row & 3u] = x_stage[i][j]; }
  }
  for (var i = 0u; i < W_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    if (u >= W_TOTAL) { break; }
    let row = u / (TILE_K / UK);
    let c = u % (TILE_K / UK);
    for (var j = 0u; j < UK; j++) {
      ws_tile[kb + c * UK + j][row >> 2u][row & 3u] = w_stage[i * W_SLOTS + (j >> 2u)][j & 3u];
    }
  }
}

// #include "lib/matmul_outer"

fn multiply_tile(tx: u32, ty: u32, buf: u32) {
  let kb = buf * TILE_K;
  for (var kk = 0u; kk < TILE_K; kk += 8u) {
    let k = kb + kk;
    multiply_k(tx, ty, k);
    multiply_k(tx, ty, k + 1u);
    multiply_k(tx, ty, k + 2u);
    multiply_k(tx, ty, k + 3u);
    multiply_k(tx, ty, k + 4u);
    multiply_k(tx, ty, k + 5u);
    multiply_k(tx, ty, k + 6u);
    multiply_k(tx, ty, k + 7u);
  }
}

// acc = this thread's products over the whole reduction length K, for the tile at (m0, n0) in x_span / w_span terms.
fn multiply_all(lid: u32, tx: u32, ty: u32, m0: u32, n0: u32, K: u32) {
  let tiles = (K + TILE_K - 1u) / TILE_K;
  load_tile(lid, m0, n0, 0u);
  store_tile(lid, 0u);
  workgroupBarrier();
  for (var t = 0u; t < tiles; t++) {
    let buf = t & 1u;
    let more = t + 1u < tiles;
    if (more) { load_tile(lid, m0, n0, (t + 1u) * TILE_K); }
    multiply_tile(tx, ty, buf);
    if (more) { store_tile(lid, buf ^ 1u); }
    workgroupBarrier();
  }
}

// Row i of this thread's 8 (i < 4: the first 4-row group), relative to the tile's first row.
fn tile_row(ty: u32, i: u32) -> u32 {
  return select(WG_M * 4u + ty * 4u + (i - 4u), ty * 4u + i, i < 4u);
}
