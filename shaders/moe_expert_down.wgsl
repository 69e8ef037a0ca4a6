// Grouped expert matmul, second half of SwiGLU: for every plan row r of expert e,
//   y[r, n] = h[r]·Wd[e, n],  n < H,   with down[e] = [H, I] (transformers' down_proj layout).
// The plan's tile list gives each y-workgroup (expert, first row); an expert's rows are contiguous in h and y (token
// order). x-workgroups cover H in TILE_N columns.
//
// Tiling (the register-blocked scheme of shaders/matmul.wgsl, per plan tile): WG_N × WG_M threads compute a
// TILE_M × TILE_N block (TILE_M = 8·WG_M, TILE_N = 8·WG_N); each thread owns 8 × 8 outputs as two 4-row groups
// TILE_M/2 apart times two 4-column groups TILE_N/2 apart, so every shared-memory read of a warp is a broadcast (h) or
// consecutive vec4s (weights). K (= I) advances TILE_K at a time through double-buffered shared memory (next tile read
// into registers before the current one is multiplied); both operands sit transposed ([k][m], [k][n]) as f32.
// ALIGNED (I % 4 == 0, and % 8 for f16/bf16): 16-byte loads; otherwise element by element. Out-of-range tiles and
// experts of other weight bindings return at once (the grid is sized for the worst case: no indirect dispatch).
// h, weights and y are viewed as vec4 arrays: allocate them with sizes rounded up to 16 bytes.
// #include "lib/weights"

struct Params {
  inter: u32,           // I: reduction length
  hidden: u32,          // H: output columns
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
@group(0) @binding(1) var<storage, read> h: array<vec4<f32>>;       // [rows, I]
@group(0) @binding(2) var<storage, read> plan: array<u32>;          // dispatch plan
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;       // [num_experts, H, I] WEIGHT_DTYPE words
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>; // [rows, H]

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override TILE_K: u32 = 16u;      // multiple of 8
override ALIGNED: bool = true;

const MAX_TILE_VEC4: u32 = 32u;  // shared row width in vec4s: TILE_M, TILE_N ≤ 128
const MAX_SLOTS: u32 = 8u;
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
var<workgroup> tile_info: vec4<u32>; // expert, first row, end row, tile count

var<private> x_stage: array<vec4<f32>, MAX_SLOTS>;
var<private> w_stage: array<vec4<f32>, MAX_SLOTS>;
var<private> acc: array<vec4<f32>, 16>;
var<private> row0: u32;
var<private> row_end: u32;
var<private> wbase: u32; // element offset of the expert's matrix in this binding

fn h4(row: u32, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  let K = P.inter;
  if (row >= row_end) { return v; }
  let base = row * K + k;
  if (ALIGNED) {
    if (k < K) { v = h[base >> 2u]; }
  } else {
    for (var j = 0u; j < 4u; j++) {
      if (k + j < K) { let e = base + j; v[j] = h[e >> 2u][e & 3u]; }
    }
  }
  return v;
}

fn stage_w_unit(slot: u32, n: u32, k: u32) {
  let K = P.inter;
  var vals: array<f32, 8>;
  let e = wbase + n * K + k;
  if (ALIGNED) {
    if (n < P.hidden && k < K) {
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
      if (n < P.hidden && k + j < K) {
        let ej = weight_word(e + j);
        vals[j] = decode_weight(w[ej >> 2u][ej & 3u], e + j);
      }
    }
  }
  for (var s = 0u; s < W_SLOTS; s++) {
    w_stage[slot + s] = vec4<f32>(vals[4u * s], vals[4u * s + 1u], vals[4u * s + 2u], vals[4u * s + 3u]);
  }
}

fn load_tile(lid: u32, n0: u32, k0: u32) {
  for (var i = 0u; i < X_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    x_stage[i] = h4(row0 + u / (TILE_K / 4u), k0 + (u % (TILE_K / 4u)) * 4u);
  }
  for (var i = 0u; i < W_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    if (u >= W_TOTAL) { break; }
    stage_w_unit(i * W_SLOTS, n0 + u / (TILE_K / UK), k0 + (u % (TILE_K / UK)) * UK);
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
      ws_tile[kb + c * UK + j][row >> 2u][row & 3u] = w_stage[i * W_SLOTS + (j >> 2u)][j & 3u];
    }
  }
}

fn multiply_k(tx: u32, ty: u32, k: u32) {
  let a0 = xs_tile[k][ty];
  let a1 = xs_tile[k][WG_M + ty];
  let b0 = ws_tile[k][tx];
  let b1 = ws_tile[k][WG_N + tx];
  acc[0] += a0.x * b0;  acc[1] += a0.x * b1;
  acc[2] += a0.y * b0;  acc[3] += a0.y * b1;
  acc[4] += a0.z * b0;  acc[5] += a0.z * b1;
  acc[6] += a0.w * b0;  acc[7] += a0.w * b1;
  acc[8] += a1.x * b0;  acc[9] += a1.x * b1;
  acc[10] += a1.y * b0; acc[11] += a1.y * b1;
  acc[12] += a1.z * b0; acc[13] += a1.z * b1;
  acc[14] += a1.w * b0; acc[15] += a1.w * b1;
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

fn store_y(row: u32, n: u32, v: vec4<f32>) {
  let N = P.hidden;
  if (row >= row_end || n >= N) { return; }
  let base = row * N + n;
  if ((N & 3u) == 0u) {
    y[base >> 2u] = v;
  } else {
    for (var j = 0u; j < 4u; j++) {
      if (n + j < N) { let e = base + j; y[e >> 2u][e & 3u] = v[j]; }
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
  row0 = info.y;
  row_end = info.z;
  wbase = (info.x - P.first_expert) * P.hidden * P.inter;
  let n0 = wg.x * TILE_N;
  let tx = local.x;
  let ty = local.y;
  let tiles = (P.inter + TILE_K - 1u) / TILE_K;

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
    store_y(row, n0 + tx * 4u, acc[2u * i]);
    store_y(row, n0 + WG_N * 4u + tx * 4u, acc[2u * i + 1u]);
  }
}
