// Grouped expert matmul for few rows per expert (decode): the down half of SwiGLU,
//   y[r, n] = h[r]·Wd[e, n] (+ bias[e, n], gpt-oss),  n < H,   down[e] = [H, I]
// for plan tiles of at most R rows. Each group of LANES threads owns one output column n (one weight row); the lanes
// stride over I in 16-byte units (ALIGNED: I % 4 == 0, % 8 for 16-bit weights), two in flight per lane, element by
// element otherwise; row accumulators in registers, a shared-memory tree adds the lanes (only the tile's rows).
// Grid: x = ceil(H / GROUPS), y = plan tiles (extra tiles and other bindings' experts return at once).
// h and the weights are viewed as vec4 arrays: allocate them with sizes rounded up to 16 bytes.
// Block-quantised weights (lib/quant; I a whole number of blocks): the lanes stride over I in 32-element sub-blocks.
// #include "lib/quant"
// #include "lib/moe_expert_params"

@group(0) @binding(0) var<uniform> P: ExpertParams;
@group(0) @binding(1) var<storage, read> h: array<vec4<f32>>;     // [rows, I]
@group(0) @binding(2) var<storage, read> plan: array<u32>;        // dispatch plan
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;     // [num_experts, H, I] WEIGHT_DTYPE words/blocks
@group(0) @binding(4) var<storage, read_write> y: array<f32>;     // [rows, H]
@group(0) @binding(5) var<storage, read> bias: array<f32>;        // [E, H] down biases (has_bias = 1)

override ALIGNED: bool = true;
const LANES: u32 = 32u;
const GROUPS: u32 = 8u;
const R: u32 = 8u;
override UK: u32 = select(8u, 4u, WEIGHT_DTYPE == 0u);

var<workgroup> partial: array<f32, 2048>; // [GROUPS, LANES, R]
var<workgroup> tile_info: vec4<u32>; // plan_tile with the tile's row count (≤ R) in z

var<private> acc: array<f32, 8>;

fn w_word(i: u32) -> u32 {
  return w[i >> 2u][i & 3u];
}

// acc += h rows (from element hb, K apart) · sub-block s of the weight row at byte `row`.
fn fma_sub32(row: u32, hb: u32, K: u32, s: u32, nrows: u32) {
  let wq = quant_sub32(row, s);
  for (var r = 0u; r < R; r++) {
    if (r < nrows) {
      let base = ((hb + r * K) >> 2u) + 8u * s;
      var sum = 0.0;
      for (var q = 0u; q < 8u; q++) { sum += dot(h[base + q], wq[q]); }
      acc[r] += sum;
    }
  }
}

fn h_at(i: u32) -> f32 {
  return h[i >> 2u][i & 3u];
}

fn w_at(e: u32) -> f32 {
  let i = weight_word(e);
  return decode_weight(w[i >> 2u][i & 3u], e);
}

fn w_unit(e: u32) -> array<f32, 8> {
  var v: array<f32, 8>;
  if (WEIGHT_DTYPE == 0u) {
    let q = w[e >> 2u];
    v[0] = bitcast<f32>(q.x); v[1] = bitcast<f32>(q.y); v[2] = bitcast<f32>(q.z); v[3] = bitcast<f32>(q.w);
  } else {
    let q = w[e >> 3u];
    let p0 = decode_pair(q.x); let p1 = decode_pair(q.y); let p2 = decode_pair(q.z); let p3 = decode_pair(q.w);
    v[0] = p0.x; v[1] = p0.y; v[2] = p1.x; v[3] = p1.y; v[4] = p2.x; v[5] = p2.y; v[6] = p3.x; v[7] = p3.y;
  }
  return v;
}

fn fma_unit(wv: array<f32, 8>, hb: u32, K: u32, k: u32, nrows: u32) {
  for (var r = 0u; r < R; r++) {
    if (r < nrows) {
      let i = hb + r * K + k;
      let a = h[i >> 2u];
      var s = a.x * wv[0] + a.y * wv[1] + a.z * wv[2] + a.w * wv[3];
      if (UK == 8u) {
        let b = h[(i + 4u) >> 2u];
        s += b.x * wv[4] + b.y * wv[5] + b.z * wv[6] + b.w * wv[7];
      }
      acc[r] += s;
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tile = wg.y;
  if (li == 0u) {
    var info = plan_tile(tile);
    info.z = min(R, info.z - info.y);
    tile_info = info;
  }
  let info = workgroupUniformLoad(&tile_info);
  if (!tile_in_binding(tile, info)) { return; }
  let nrows = info.z;
  let K = P.k;
  let N = P.n;
  let group = li / LANES;
  let lane = li % LANES;
  let n = wg.x * GROUPS + group;
  let hb = info.y * K;

  if (n < N) {
    let wbase = (info.x - P.first_expert) * N * K + n * K;
    if (is_quant()) {
      let row = ((info.x - P.first_expert) * N + n) * quant_row_bytes(K);
      for (var s = lane; s < K / 32u; s += LANES) { fma_sub32(row, hb, K, s, nrows); }
    } else if (ALIGNED) {
      let step = LANES * UK;
      var k = lane * UK;
      for (; k + step < K; k += 2u * step) {
        let w0 = w_unit(wbase + k);
        let w1 = w_unit(wbase + k + step);
        fma_unit(w0, hb, K, k, nrows);
        fma_unit(w1, hb, K, k + step, nrows);
      }
      if (k < K) { fma_unit(w_unit(wbase + k), hb, K, k, nrows); }
    } else {
      for (var k = lane; k < K; k += LANES) {
        let wv = w_at(wbase + k);
        for (var r = 0u; r < R; r++) {
          if (r < nrows) { acc[r] += h_at(hb + r * K + k) * wv; }
        }
      }
    }
  }
  let pbase = (group * LANES + lane) * R;
  for (var r = 0u; r < R; r++) { partial[pbase + r] = acc[r]; }
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      let other = pbase + stride * R;
      for (var r = 0u; r < R; r++) {
        if (r < nrows) { partial[pbase + r] += partial[other + r]; }
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < N) {
    let b = expert_bias(info.x, n);
    for (var r = 0u; r < R; r++) {
      if (r < nrows) { y[(info.y + r) * N + n] = partial[pbase + r] + b; }
    }
  }
}
