// Grouped expert matmul, first half of SwiGLU: for every row r of the dispatch plan (expert e, token t),
//   h[r, j] = silu(x[t]·Wg[e, j]) · (x[t]·Wu[e, j]),  j < I,   silu(g) = g / (1 + exp(-g))
// with the fused transformers layout gate_up[e] = [2I, H]: rows 0..I-1 are the gate, I..2I-1 the up projection.
// Tiling: the plan's tile list gives each y-workgroup (expert, first row) with tile_m = WG_M·RM rows; x-workgroups
// cover I in TN = WG_N·RN columns. Per TK slice of H: the TM gathered x rows and the TN gate + TN up weight rows are
// staged in shared memory (k-major), then each thread accumulates an RM × RN block of gate and of up in registers.
// Workgroups past the plan's tile count, or whose expert lives in another weight binding, return at once (the grid
// is sized for the worst case, so no indirect dispatch is needed).
// The same kernel runs dense SwiGLU MLPs (shared experts) with a one-expert plan whose rows are all tokens.
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
@group(0) @binding(1) var<storage, read> x: array<f32>;             // [tokens, H]
@group(0) @binding(2) var<storage, read> plan: array<u32>;          // dispatch plan (row_key = token·8 + slot)
@group(0) @binding(3) var<storage, read> w_gate_up: array<u32>;     // [num_experts, 2I, H] WEIGHT_DTYPE words
@group(0) @binding(4) var<storage, read_write> h: array<f32>;       // [rows, I]

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override TK: u32 = 16u;
const RM: u32 = 8u; // rows per thread (sizes register arrays, hence const)
const RN: u32 = 4u; // gate/up columns per thread
override TM: u32 = WG_M * RM;
override TN: u32 = WG_N * RN;

var<workgroup> a_tile: array<f32, TK * TM>;   // [TK, TM]
var<workgroup> g_tile: array<f32, TK * TN>;   // [TK, TN]
var<workgroup> u_tile: array<f32, TK * TN>;   // [TK, TN]
var<workgroup> row_token: array<u32, TM>;
var<workgroup> tile_info: vec4<u32>;          // expert, first row, end row, tile count

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
  let K = P.hidden;
  let I = P.inter;
  let n0 = wg.x * TN;
  let nthreads = WG_M * WG_N;
  let wbase = (info.x - P.first_expert) * 2u * I * K;

  for (var r = li; r < TM; r += nthreads) {
    let row = row0 + r;
    row_token[r] = select(NO_ROW, plan[P.off_row_key + row] / 8u, row < row_end);
  }
  workgroupBarrier();

  var acc_g = array<f32, 32>(); // [RM, RN]
  var acc_u = array<f32, 32>();
  for (var k0 = 0u; k0 < K; k0 += TK) {
    for (var i = li; i < TM * TK; i += nthreads) {
      let r = i / TK;
      let kk = i % TK;
      let tok = row_token[r];
      var v = 0.0;
      if (tok != NO_ROW && k0 + kk < K) { v = x[tok * K + k0 + kk]; }
      a_tile[kk * TM + r] = v;
    }
    for (var i = li; i < TN * TK; i += nthreads) {
      let c = i / TK;
      let kk = i % TK;
      let n = n0 + c;
      var g = 0.0;
      var u = 0.0;
      if (n < I && k0 + kk < K) {
        let ig = wbase + n * K + k0 + kk;
        let iu = ig + I * K;
        g = decode_weight(w_gate_up[weight_word(ig)], ig);
        u = decode_weight(w_gate_up[weight_word(iu)], iu);
      }
      g_tile[kk * TN + c] = g;
      u_tile[kk * TN + c] = u;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a = array<f32, RM>();
      for (var i = 0u; i < RM; i++) { a[i] = a_tile[kk * TM + lid.y * RM + i]; }
      for (var j = 0u; j < RN; j++) {
        let g = g_tile[kk * TN + lid.x * RN + j];
        let u = u_tile[kk * TN + lid.x * RN + j];
        for (var i = 0u; i < RM; i++) {
          acc_g[i * RN + j] += a[i] * g;
          acc_u[i * RN + j] += a[i] * u;
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < RM; i++) {
    let row = row0 + lid.y * RM + i;
    if (row >= row_end) { continue; }
    for (var j = 0u; j < RN; j++) {
      let n = n0 + lid.x * RN + j;
      if (n < I) {
        let g = acc_g[i * RN + j];
        h[row * I + n] = g / (1.0 + exp(-g)) * acc_u[i * RN + j];
      }
    }
  }
}

const NO_ROW: u32 = 0xffffffffu;
