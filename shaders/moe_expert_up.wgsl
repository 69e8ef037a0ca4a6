// Grouped expert matmul, first half of SwiGLU: for every row r of the dispatch plan (expert e, token t),
//   h[r, j] = silu(x[t]·Wg[e, j]) · (x[t]·Wu[e, j]),  j < I,   silu(g) = g / (1 + exp(-g))
// with the fused transformers layout gate_up[e] = [2I, H]: rows 0..I-1 are the gate, I..2I-1 the up projection.
// The plan's tile list gives each y-workgroup (expert, first row); rows map to tokens through the plan's row keys
// (token·8 + slot), so x rows are gathered, not copied. x-workgroups cover I in TILE_N columns.
//
// Tiling (the register-blocked scheme of shaders/matmul.wgsl, with gate and up side by side): WG_N × WG_M threads
// compute TILE_M × TILE_N outputs (TILE_M = 8·WG_M, TILE_N = 4·WG_N); each thread owns 8 rows (two 4-row groups
// TILE_M/2 apart) × 4 columns of both the gate and the up product, 64 accumulators. H advances TILE_K at a time
// through double-buffered shared memory; the next slice is read into registers before the current one is used.
// ALIGNED (H % 4 == 0, and % 8 for f16/bf16): 16-byte loads; otherwise element by element. Workgroups past the plan's
// tile count, or whose expert lives in another weight binding, return at once (worst-case grid, no indirect dispatch).
// The same kernel runs dense SwiGLU MLPs (shared experts) with a one-expert plan whose rows are all tokens.
// x, weights and h are viewed as vec4 arrays: allocate them with sizes rounded up to 16 bytes.
// #include "lib/weights"

struct Params {
  hidden: u32,          // H: reduction length
  inter: u32,           // I: output columns
  first_expert: u32,    // this binding holds experts [first_expert, first_expert + num_experts)
  num_experts: u32,
  off_header: u32,      // plan-buffer offsets (words)
  off_offsets: u32,
  off_kept: u32,
  off_tile_expert: u32,
  off_tile_row: u32,
  off_row_key: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;        // [tokens, H]
@group(0) @binding(2) var<storage, read> plan: array<u32>;           // dispatch plan (row_key = token·8 + slot)
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;        // [num_experts, 2I, H] WEIGHT_DTYPE words
@group(0) @binding(4) var<storage, read_write> h: array<vec4<f32>>;  // [rows, I]

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override TILE_K: u32 = 16u;      // multiple of 8
override ALIGNED: bool = true;

const X_VEC4: u32 = 32u;         // shared row width in vec4s: TILE_M ≤ 128
const W_VEC4: u32 = 16u;         // TILE_N ≤ 64
const MAX_SLOTS: u32 = 8u;
override TILE_M: u32 = WG_M * 8u;
override TILE_N: u32 = WG_N * 4u;
override WG_SIZE: u32 = WG_M * WG_N;
override UK: u32 = select(8u, 4u, WEIGHT_DTYPE == 0u);
override X_UNITS: u32 = TILE_M * TILE_K / (4u * WG_SIZE);
override W_TOTAL: u32 = TILE_N * TILE_K / UK;        // units of one matrix (gate or up)
override W_UNITS: u32 = (W_TOTAL + WG_SIZE - 1u) / WG_SIZE;
override W_SLOTS: u32 = UK / 4u;
override STAGED_K: u32 = 2u * TILE_K;

var<workgroup> xs_tile: array<array<vec4<f32>, X_VEC4>, STAGED_K>; // [buffer·TILE_K + k][m / 4]
var<workgroup> gs_tile: array<array<vec4<f32>, W_VEC4>, STAGED_K>; // [buffer·TILE_K + k][n / 4] gate
var<workgroup> us_tile: array<array<vec4<f32>, W_VEC4>, STAGED_K>; // [buffer·TILE_K + k][n / 4] up
var<workgroup> row_token: array<u32, 128>; // token of each tile row (NONE past the expert's rows)
var<workgroup> tile_info: vec4<u32>;       // expert, first row, end row, tile count

var<private> x_stage: array<vec4<f32>, MAX_SLOTS>;
var<private> g_stage: array<vec4<f32>, MAX_SLOTS>;
var<private> u_stage: array<vec4<f32>, MAX_SLOTS>;
var<private> acc_g: array<vec4<f32>, 8>;
var<private> acc_u: array<vec4<f32>, 8>;
var<private> gbase: u32; // element offset of the expert's gate rows in this binding

const NO_ROW: u32 = 0xffffffffu;

fn x4(r: u32, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  let K = P.hidden;
  let tok = row_token[r];
  if (tok == NO_ROW) { return v; }
  let base = tok * K + k;
  if (ALIGNED) {
    if (k < K) { v = x[base >> 2u]; }
  } else {
    for (var j = 0u; j < 4u; j++) {
      if (k + j < K) { let e = base + j; v[j] = x[e >> 2u][e & 3u]; }
    }
  }
  return v;
}

// UK weights of row `row` (element offset), from k, into stage[slot ..]; zero outside.
fn weights4(row_base: u32, inside: bool, k: u32) -> array<f32, 8> {
  let K = P.hidden;
  var vals: array<f32, 8>;
  let e = row_base + k;
  if (ALIGNED) {
    if (inside && k < K) {
      if (WEIGHT_DTYPE == 0u) {
        let q = w[e >> 2u];
        vals[0] = bitcast<f32>(q.x); vals[1] = bitcast<f32>(q.y);
        vals[2] = bitcast<f32>(q.z); vals[3] = bitcast<f32>(q.w);
      } else {
        let q = w[e >> 3u];
        let p0 = decode_pair(q.x); let p1 = decode_pair(q.y);
        let p2 = decode_pair(q.z); let p3 = decode_pair(q.w);
        vals[0] = p0.x; vals[1] = p0.y; vals[2] = p1.x; vals[3] = p1.y;
        vals[4] = p2.x; vals[5] = p2.y; vals[6] = p3.x; vals[7] = p3.y;
      }
    }
  } else {
    for (var j = 0u; j < UK; j++) {
      if (inside && k + j < K) {
        let ej = weight_word(e + j);
        vals[j] = decode_weight(w[ej >> 2u][ej & 3u], e + j);
      }
    }
  }
  return vals;
}

fn load_tile(lid: u32, n0: u32, k0: u32) {
  for (var i = 0u; i < X_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    x_stage[i] = x4(u / (TILE_K / 4u), k0 + (u % (TILE_K / 4u)) * 4u);
  }
  let K = P.hidden;
  let I = P.inter;
  for (var i = 0u; i < W_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    if (u >= W_TOTAL) { break; }
    let n = n0 + u / (TILE_K / UK);
    let k = k0 + (u % (TILE_K / UK)) * UK;
    let g = weights4(gbase + n * K, n < I, k);
    let up = weights4(gbase + (I + n) * K, n < I, k);
    for (var s = 0u; s < W_SLOTS; s++) {
      g_stage[i * W_SLOTS + s] = vec4<f32>(g[4u * s], g[4u * s + 1u], g[4u * s + 2u], g[4u * s + 3u]);
      u_stage[i * W_SLOTS + s] = vec4<f32>(up[4u * s], up[4u * s + 1u], up[4u * s + 2u], up[4u * s + 3u]);
    }
  }
}

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
      gs_tile[kb + c * UK + j][row >> 2u][row & 3u] = g_stage[i * W_SLOTS + (j >> 2u)][j & 3u];
      us_tile[kb + c * UK + j][row >> 2u][row & 3u] = u_stage[i * W_SLOTS + (j >> 2u)][j & 3u];
    }
  }
}

fn multiply_k(tx: u32, ty: u32, k: u32) {
  let a0 = xs_tile[k][ty];
  let a1 = xs_tile[k][WG_M + ty];
  let g = gs_tile[k][tx];
  let u = us_tile[k][tx];
  acc_g[0] += a0.x * g; acc_u[0] += a0.x * u;
  acc_g[1] += a0.y * g; acc_u[1] += a0.y * u;
  acc_g[2] += a0.z * g; acc_u[2] += a0.z * u;
  acc_g[3] += a0.w * g; acc_u[3] += a0.w * u;
  acc_g[4] += a1.x * g; acc_u[4] += a1.x * u;
  acc_g[5] += a1.y * g; acc_u[5] += a1.y * u;
  acc_g[6] += a1.z * g; acc_u[6] += a1.z * u;
  acc_g[7] += a1.w * g; acc_u[7] += a1.w * u;
}

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

fn store_h(row: u32, n: u32, g: vec4<f32>, u: vec4<f32>) {
  let I = P.inter;
  if (row >= tile_info.z || n >= I) { return; }
  let v = g / (vec4<f32>(1.0) + exp(-g)) * u;
  let base = row * I + n;
  if ((I & 3u) == 0u) {
    h[base >> 2u] = v;
  } else {
    for (var j = 0u; j < 4u; j++) {
      if (n + j < I) { let e = base + j; h[e >> 2u][e & 3u] = v[j]; }
    }
  }
}

@compute @workgroup_size(WG_N, WG_M)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let tile = wg.y;
  if (lid == 0u) {
    let n_tiles = plan[P.off_header];
    var info = vec4<u32>(0u, 0u, 0u, n_tiles);
    if (tile < n_tiles) {
      let e = plan[P.off_tile_expert + tile];
      info = vec4<u32>(e, plan[P.off_tile_row + tile], plan[P.off_offsets + e] + plan[P.off_kept + e], n_tiles);
    }
    tile_info = info;
  }
  let info = workgroupUniformLoad(&tile_info);
  if (tile >= info.w || info.x < P.first_expert || info.x >= P.first_expert + P.num_experts) { return; }
  let row0 = info.y;
  for (var r = lid; r < TILE_M; r += WG_SIZE) {
    let row = row0 + r;
    row_token[r] = select(NO_ROW, plan[P.off_row_key + row] / 8u, row < info.z);
  }
  workgroupBarrier();
  gbase = (info.x - P.first_expert) * 2u * P.inter * P.hidden;
  let n0 = wg.x * TILE_N;
  let tx = local.x;
  let ty = local.y;
  let tiles = (P.hidden + TILE_K - 1u) / TILE_K;

  load_tile(lid, n0, 0u);
  store_tile(lid, 0u);
  workgroupBarrier();
  for (var t = 0u; t < tiles; t++) {
    let buf = t & 1u;
    let more = t + 1u < tiles;
    if (more) { load_tile(lid, n0, (t + 1u) * TILE_K); }
    multiply_tile(tx, ty, buf);
    if (more) { store_tile(lid, buf ^ 1u); }
    workgroupBarrier();
  }

  for (var i = 0u; i < 8u; i++) {
    let row = row0 + select(WG_M * 4u + ty * 4u + (i - 4u), ty * 4u + i, i < 4u);
    store_h(row, n0 + tx * 4u, acc_g[i], acc_u[i]);
  }
}
