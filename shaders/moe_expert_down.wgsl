// Grouped expert matmul, second half of SwiGLU: for every plan row r of expert e,
//   y[r, n] = h[r]·Wd[e, n],  n < H,   with down[e] = [H, I] (transformers' down_proj layout).
// Rows of one expert are contiguous in h and y (the plan lists them in token order). Tiling as moe_expert_up:
// plan tiles of TM = WG_M·RM rows on y-workgroups, TN = WG_N·RN output columns on x-workgroups, TK slices of I
// staged in shared memory, an RM × RN register block per thread. Out-of-range tiles and experts of other weight
// bindings return at once.
// #include "lib/weights"

struct Params {
  inter: u32,           // I: reduction length
  hidden: u32,          // H: output columns
  first_expert: u32,
  num_experts: u32,
  off_header: u32,
  off_offsets: u32,
  off_kept: u32,
  off_tile_expert: u32,
  off_tile_row: u32,
  off_row_key: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> h: array<f32>;           // [rows, I]
@group(0) @binding(2) var<storage, read> plan: array<u32>;        // dispatch plan
@group(0) @binding(3) var<storage, read> w_down: array<u32>;      // [num_experts, H, I] WEIGHT_DTYPE words
@group(0) @binding(4) var<storage, read_write> y: array<f32>;     // [rows, H]

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override TK: u32 = 16u;
const RM: u32 = 8u;
const RN: u32 = 8u;
override TM: u32 = WG_M * RM;
override TN: u32 = WG_N * RN;

var<workgroup> a_tile: array<f32, TK * TM>;   // [TK, TM]
var<workgroup> b_tile: array<f32, TK * TN>;   // [TK, TN]
var<workgroup> tile_info: vec4<u32>;

@compute @workgroup_size(WG_N, WG_M)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let tile = wg.y;
  if (li == 0u) {
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
  let row_end = info.z;
  let K = P.inter;
  let N = P.hidden;
  let n0 = wg.x * TN;
  let nthreads = WG_M * WG_N;
  let wbase = (info.x - P.first_expert) * N * K;

  var acc = array<f32, 64>(); // [RM, RN]
  for (var k0 = 0u; k0 < K; k0 += TK) {
    for (var i = li; i < TM * TK; i += nthreads) {
      let r = i / TK;
      let kk = i % TK;
      let row = row0 + r;
      var v = 0.0;
      if (row < row_end && k0 + kk < K) { v = h[row * K + k0 + kk]; }
      a_tile[kk * TM + r] = v;
    }
    for (var i = li; i < TN * TK; i += nthreads) {
      let c = i / TK;
      let kk = i % TK;
      let n = n0 + c;
      var b = 0.0;
      if (n < N && k0 + kk < K) {
        let iw = wbase + n * K + k0 + kk;
        b = decode_weight(w_down[weight_word(iw)], iw);
      }
      b_tile[kk * TN + c] = b;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a = array<f32, RM>();
      for (var i = 0u; i < RM; i++) { a[i] = a_tile[kk * TM + lid.y * RM + i]; }
      for (var j = 0u; j < RN; j++) {
        let b = b_tile[kk * TN + lid.x * RN + j];
        for (var i = 0u; i < RM; i++) { acc[i * RN + j] += a[i] * b; }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < RM; i++) {
    let row = row0 + lid.y * RM + i;
    if (row >= row_end) { continue; }
    for (var j = 0u; j < RN; j++) {
      let n = n0 + lid.x * RN + j;
      if (n < N) { y[row * N + n] = acc[i * RN + j]; }
    }
  }
}
