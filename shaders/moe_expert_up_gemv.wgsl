// Grouped expert matmul for few rows per expert (decode): the gate/up half of SwiGLU,
//   h[r, j] = silu(x[t]·Wg[e, j]) · (x[t]·Wu[e, j]),  j < I,   gate_up[e] = [2I, H] (rows 0..I-1 gate, I..2I-1 up)
// for plan tiles of at most R rows. Bound by reading the weights once, so the work is split along the weight rows:
// each group of LANES threads owns one output column j (its gate row and its up row), the lanes stride over H with
// 4 loads in flight, and R row accumulators stay in registers; a shared-memory tree adds the lanes.
// Workgroup grid: x = ceil(I / GROUPS) column blocks, y = plan tiles (those past the tile count, or of experts in
// another weight binding, return at once).
// #include "lib/weights"

struct Params {
  hidden: u32,
  inter: u32,
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
@group(0) @binding(1) var<storage, read> x: array<f32>;             // [tokens, H]
@group(0) @binding(2) var<storage, read> plan: array<u32>;          // dispatch plan (row_key = token·8 + slot)
@group(0) @binding(3) var<storage, read> w_gate_up: array<u32>;     // [num_experts, 2I, H] WEIGHT_DTYPE words
@group(0) @binding(4) var<storage, read_write> h: array<f32>;       // [rows, I]

const LANES: u32 = 32u;
const GROUPS: u32 = 8u;
const R: u32 = 8u; // rows per plan tile (the host sets the plan's tile_m to this)

var<workgroup> partial: array<f32, 4096>; // [GROUPS, LANES, 2R]
var<workgroup> tile_info: vec4<u32>;      // expert, first row, row count, tile count
var<workgroup> row_token: array<u32, 8>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tile = wg.y;
  if (li == 0u) {
    let n_tiles = plan[P.off_header];
    var info = vec4<u32>(0u, 0u, 0u, n_tiles);
    if (tile < n_tiles) {
      let e = plan[P.off_tile_expert + tile];
      let row0 = plan[P.off_tile_row + tile];
      let end = plan[P.off_offsets + e] + plan[P.off_kept + e];
      info = vec4<u32>(e, row0, min(R, end - row0), n_tiles);
      for (var r = 0u; r < R; r++) {
        row_token[r] = select(0u, plan[P.off_row_key + row0 + r] / 8u, r < info.z);
      }
    }
    tile_info = info;
  }
  let info = workgroupUniformLoad(&tile_info);
  if (tile >= info.w || info.x < P.first_expert || info.x >= P.first_expert + P.num_experts) { return; }
  let nrows = info.z;
  let K = P.hidden;
  let I = P.inter;
  let group = li / LANES;
  let lane = li % LANES;
  let j = wg.x * GROUPS + group;
  var tok = array<u32, 8>();
  for (var r = 0u; r < R; r++) { tok[r] = row_token[r] * K; }

  var acc_g = array<f32, 8>();
  var acc_u = array<f32, 8>();
  if (j < I) {
    let gbase = (info.x - P.first_expert) * 2u * I * K + j * K;
    let ubase = gbase + I * K;
    var k = lane;
    for (; k + 3u * LANES < K; k += 4u * LANES) {
      var wg4: array<f32, 4>;
      var wu4: array<f32, 4>;
      for (var q = 0u; q < 4u; q++) {
        let kq = k + q * LANES;
        wg4[q] = decode_weight(w_gate_up[weight_word(gbase + kq)], gbase + kq);
        wu4[q] = decode_weight(w_gate_up[weight_word(ubase + kq)], ubase + kq);
      }
      for (var r = 0u; r < R; r++) {
        if (r < nrows) {
          for (var q = 0u; q < 4u; q++) {
            let xv = x[tok[r] + k + q * LANES];
            acc_g[r] += xv * wg4[q];
            acc_u[r] += xv * wu4[q];
          }
        }
      }
    }
    for (; k < K; k += LANES) {
      let wgv = decode_weight(w_gate_up[weight_word(gbase + k)], gbase + k);
      let wuv = decode_weight(w_gate_up[weight_word(ubase + k)], ubase + k);
      for (var r = 0u; r < R; r++) {
        if (r < nrows) {
          let xv = x[tok[r] + k];
          acc_g[r] += xv * wgv;
          acc_u[r] += xv * wuv;
        }
      }
    }
  }
  let pbase = (group * LANES + lane) * 2u * R;
  for (var r = 0u; r < R; r++) {
    partial[pbase + r] = acc_g[r];
    partial[pbase + R + r] = acc_u[r];
  }
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      let other = pbase + stride * 2u * R;
      for (var r = 0u; r < 2u * R; r++) { partial[pbase + r] += partial[other + r]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && j < I) {
    for (var r = 0u; r < R; r++) {
      if (r < nrows) {
        let g = partial[pbase + r];
        h[(info.y + r) * I + j] = g / (1.0 + exp(-g)) * partial[pbase + R + r];
      }
    }
  }
}
