// Grouped expert matmul, second half of SwiGLU: for every plan row r of expert e,
//   y[r, n] = h[r]·Wd[e, n] (+ bias[e, n], gpt-oss),  n < H,   with down[e] = [H, I] (transformers' down_proj layout).
// The plan's tile list gives each y-workgroup (expert, first row); an expert's rows are contiguous in h and y (token
// order). x-workgroups cover H in TILE_N = 8·WG_N columns.
//
// Tiling and K loop: lib/matmul_core (the dense matmul's; h rows × weight rows, K = I); the prologue (x_span, w_span)
// bounds rows by the expert's and offsets W into the tile's expert.
// ALIGNED (I % 4 == 0, and % 8 for f16/bf16): 16-byte loads; otherwise element by element. Out-of-range tiles and
// experts of other weight bindings return at once (the grid is sized for the worst case: no indirect dispatch).
// h, weights and y are viewed as vec4 arrays: allocate them with sizes rounded up to 16 bytes.
// #include "lib/weights"
// #include "lib/moe_expert_params"
// #include "lib/matmul_core"

@group(0) @binding(0) var<uniform> P: ExpertParams;              // k = I, n = H
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;       // [rows, I] h
@group(0) @binding(2) var<storage, read> plan: array<u32>;          // dispatch plan
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;       // [num_experts, H, I] WEIGHT_DTYPE words
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>; // [rows, H]
@group(0) @binding(5) var<storage, read> bias: array<f32>;          // [E, H] down biases (has_bias = 1)

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override TILE_K: u32 = 16u;      // 8 or 16
override ALIGNED: bool = true;
const W_NK: bool = true;         // weight rows are [n, k]

var<workgroup> tile_info: vec4<u32>; // plan_tile of this workgroup

var<private> row_end: u32;
var<private> wbase: u32; // element offset of the expert's matrix in this binding

fn x_span(m: u32, k: u32) -> vec2<u32> {
  let K = P.k;
  return vec2<u32>(m * K + k, select(0u, min(4u, K - k), m < row_end && k < K));
}

fn w_span(n: u32, k: u32) -> vec2<u32> {
  let K = P.k;
  return vec2<u32>(wbase + n * K + k, select(0u, min(UK, K - k), n < P.n && k < K));
}

fn store_y(row: u32, n: u32, acc_v: vec4<f32>) {
  let N = P.n;
  if (row >= row_end || n >= N) { return; }
  var v = acc_v;
  if (HAS_BIAS) {
    for (var j = 0u; j < 4u; j++) {
      if (n + j < N) { v[j] += expert_bias(tile_info.x, n + j); }
    }
  }
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
  if (lid == 0u) { tile_info = plan_tile(tile); }
  let info = workgroupUniformLoad(&tile_info);
  if (!tile_in_binding(tile, info)) { return; }
  let row0 = info.y;
  row_end = info.z;
  wbase = (info.x - P.first_expert) * P.n * P.k;
  let n0 = wg.x * TILE_N;
  multiply_all(lid, local.x, local.y, row0, n0, P.k, row_end - row0);

  for (var i = 0u; i < 8u; i++) {
    let row = row0 + tile_row(local.y, i);
    store_y(row, n0 + local.x * 4u, acc[2u * i]);
    store_y(row, n0 + WG_N * 4u + local.x * 4u, acc[2u * i + 1u]);
  }
}
