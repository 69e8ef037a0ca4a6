// Grouped expert matmul for few rows per expert (decode): the down half of SwiGLU,
//   y[r, n] = h[r]·Wd[e, n],  n < H,   down[e] = [H, I]
// for plan tiles of at most R rows. Each group of LANES threads owns one output column n (one weight row), the lanes
// stride over I with 4 loads in flight, R row accumulators in registers, a shared-memory tree adds the lanes.
// Grid: x = ceil(H / GROUPS), y = plan tiles (extra tiles and other bindings' experts return at once).
// #include "lib/weights"

struct Params {
  inter: u32,
  hidden: u32,
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

const LANES: u32 = 32u;
const GROUPS: u32 = 8u;
const R: u32 = 8u;

var<workgroup> partial: array<f32, 2048>; // [GROUPS, LANES, R]
var<workgroup> tile_info: vec4<u32>;

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
    }
    tile_info = info;
  }
  let info = workgroupUniformLoad(&tile_info);
  if (tile >= info.w || info.x < P.first_expert || info.x >= P.first_expert + P.num_experts) { return; }
  let nrows = info.z;
  let K = P.inter;
  let N = P.hidden;
  let group = li / LANES;
  let lane = li % LANES;
  let n = wg.x * GROUPS + group;
  let hbase = info.y * K;

  var acc = array<f32, 8>();
  if (n < N) {
    let wbase = (info.x - P.first_expert) * N * K + n * K;
    var k = lane;
    for (; k + 3u * LANES < K; k += 4u * LANES) {
      var w4: array<f32, 4>;
      for (var q = 0u; q < 4u; q++) {
        let kq = k + q * LANES;
        w4[q] = decode_weight(w_down[weight_word(wbase + kq)], wbase + kq);
      }
      for (var r = 0u; r < R; r++) {
        if (r < nrows) {
          for (var q = 0u; q < 4u; q++) { acc[r] += h[hbase + r * K + k + q * LANES] * w4[q]; }
        }
      }
    }
    for (; k < K; k += LANES) {
      let wv = decode_weight(w_down[weight_word(wbase + k)], wbase + k);
      for (var r = 0u; r < R; r++) {
        if (r < nrows) { acc[r] += h[hbase + r * K + k] * wv; }
      }
    }
  }
  let pbase = (group * LANES + lane) * R;
  for (var r = 0u; r < R; r++) { partial[pbase + r] = acc[r]; }
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      let other = pbase + stride * R;
      for (var r = 0u; r < R; r++) { partial[pbase + r] += partial[other + r]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < N) {
    for (var r = 0u; r < R; r++) {
      if (r < nrows) { y[(info.y + r) * N + n] = partial[pbase + r]; }
    }
  }
}
