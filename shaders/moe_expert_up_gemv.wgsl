// Grouped expert matmul for few rows per expert (decode): the gate/up half of SwiGLU,
//   h[r, j] = silu(x[t]·Wg[e, j]) · (x[t]·Wu[e, j]),  j < I,   gate_up[e] = [2I, H] (rows 0..I-1 gate, I..2I-1 up)
// (gpt-oss: biases added to both products and the clamped activation of lib/moe_expert_params' gated_act)
// for plan tiles of at most R rows. Bound by reading the weights once, so the work is split along the weight rows:
// each group of LANES threads owns one output column j (its gate row and its up row); the lanes stride over H in
// 16-byte units (4 f32 or 8 f16/bf16 weights; ALIGNED: H % 4 == 0, % 8 for 16-bit weights), two units in flight per
// lane, element by element otherwise. Row accumulators stay in registers; a shared-memory tree adds the lanes, only
// for the tile's rows. Grid: x = ceil(I / GROUPS) column blocks, y = plan tiles (those past the tile count, or of
// experts in another weight binding, return at once).
// x and the weights are viewed as vec4 arrays: allocate them with sizes rounded up to 16 bytes.
// Block-quantised weights (lib/quant; H a whole number of blocks): the lanes stride over H in 32-element sub-blocks,
// each decoded in registers from the gate and the up row.
// #include "lib/quant"
// #include "lib/moe_expert_params"

@group(0) @binding(0) var<uniform> P: ExpertParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;       // [tokens, H]
@group(0) @binding(2) var<storage, read> plan: array<u32>;          // dispatch plan (row_key = token·8 + slot)
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;       // [num_experts, 2I, H] WEIGHT_DTYPE words/blocks
@group(0) @binding(4) var<storage, read_write> h: array<f32>;       // [rows, I]
@group(0) @binding(5) var<storage, read> bias: array<f32>;          // [E, 2I] gate then up biases (has_bias = 1)

override ALIGNED: bool = true;
const LANES: u32 = 32u;
const GROUPS: u32 = 8u;
const R: u32 = 8u; // rows per plan tile (the host sets the plan's tile_m to this)
override UK: u32 = select(8u, 4u, WEIGHT_DTYPE == 0u);

var<workgroup> partial: array<f32, 4096>; // [GROUPS, LANES, 2R]
var<workgroup> tile_info: vec4<u32>;      // plan_tile with the tile's row count (≤ R) in z
var<workgroup> row_token: array<u32, 8>;

var<private> acc_g: array<f32, 8>;
var<private> acc_u: array<f32, 8>;
var<private> tok: array<u32, 8>; // x element offset of each row's token

fn x_at(i: u32) -> f32 {
  return x[i >> 2u][i & 3u];
}

fn w_word(i: u32) -> u32 {
  return w[i >> 2u][i & 3u];
}

// acc += x rows · sub-block s of gate row g_row and up row u_row (row byte offsets).
fn fma_sub32(g_row: u32, u_row: u32, s: u32, nrows: u32) {
  let g = quant_sub32(g_row, s);
  let u = quant_sub32(u_row, s);
  for (var r = 0u; r < R; r++) {
    if (r < nrows) {
      let xb = (tok[r] >> 2u) + 8u * s;
      var sg = 0.0;
      var su = 0.0;
      for (var q = 0u; q < 8u; q++) {
        let xv = x[xb + q];
        sg += dot(xv, g[q]);
        su += dot(xv, u[q]);
      }
      acc_g[r] += sg;
      acc_u[r] += su;
    }
  }
}

fn w_at(e: u32) -> f32 {
  let i = weight_word(e);
  return decode_weight(w[i >> 2u][i & 3u], e);
}

// The UK weights of the 16-byte unit holding element e (e a multiple of UK).
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

// acc += x rows · the unit of gate and up weights at k.
fn fma_unit(g: array<f32, 8>, u: array<f32, 8>, k: u32, nrows: u32) {
  for (var r = 0u; r < R; r++) {
    if (r < nrows) {
      let xa = x[(tok[r] + k) >> 2u];
      var sg = xa.x * g[0] + xa.y * g[1] + xa.z * g[2] + xa.w * g[3];
      var su = xa.x * u[0] + xa.y * u[1] + xa.z * u[2] + xa.w * u[3];
      if (UK == 8u) {
        let xb = x[(tok[r] + k + 4u) >> 2u];
        sg += xb.x * g[4] + xb.y * g[5] + xb.z * g[6] + xb.w * g[7];
        su += xb.x * u[4] + xb.y * u[5] + xb.z * u[6] + xb.w * u[7];
      }
      acc_g[r] += sg;
      acc_u[r] += su;
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tile = wg.y;
  if (li == 0u) {
    var info = plan_tile(tile);
    if (tile < info.w) {
      info.z = min(R, info.z - info.y);
      for (var r = 0u; r < R; r++) {
        row_token[r] = select(0u, plan[P.off_row_key + info.y + r] / 8u, r < info.z);
      }
    }
    tile_info = info;
  }
  let info = workgroupUniformLoad(&tile_info);
  if (!tile_in_binding(tile, info)) { return; }
  let nrows = info.z;
  let K = P.k;
  let I = P.n;
  let group = li / LANES;
  let lane = li % LANES;
  let j = wg.x * GROUPS + group;
  for (var r = 0u; r < R; r++) { tok[r] = row_token[r] * K; }

  if (j < I) {
    let gbase = (info.x - P.first_expert) * 2u * I * K + j * K;
    let ubase = gbase + I * K;
    if (is_quant()) {
      let rb = quant_row_bytes(K);
      let g_row = ((info.x - P.first_expert) * 2u * I + j) * rb;
      for (var s = lane; s < K / 32u; s += LANES) { fma_sub32(g_row, g_row + I * rb, s, nrows); }
    } else if (ALIGNED) {
      let step = LANES * UK;
      var k = lane * UK;
      for (; k + step < K; k += 2u * step) {
        let g0 = w_unit(gbase + k);
        let u0 = w_unit(ubase + k);
        let g1 = w_unit(gbase + k + step);
        let u1 = w_unit(ubase + k + step);
        fma_unit(g0, u0, k, nrows);
        fma_unit(g1, u1, k + step, nrows);
      }
      if (k < K) { fma_unit(w_unit(gbase + k), w_unit(ubase + k), k, nrows); }
    } else {
      for (var k = lane; k < K; k += LANES) {
        let gv = w_at(gbase + k);
        let uv = w_at(ubase + k);
        for (var r = 0u; r < R; r++) {
          if (r < nrows) {
            let xv = x_at(tok[r] + k);
            acc_g[r] += xv * gv;
            acc_u[r] += xv * uv;
          }
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
      for (var r = 0u; r < R; r++) {
        if (r < nrows) {
          partial[pbase + r] += partial[other + r];
          partial[pbase + R + r] += partial[other + R + r];
        }
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && j < I) {
    let bg = expert_bias(info.x, j);
    let bu = expert_bias(info.x, I + j);
    for (var r = 0u; r < R; r++) {
      if (r < nrows) {
        h[(info.y + r) * I + j] = gated_act(vec4<f32>(partial[pbase + r] + bg), vec4<f32>(partial[pbase + R + r] + bu)).x;
      }
    }
  }
}
