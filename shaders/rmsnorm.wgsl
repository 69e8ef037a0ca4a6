// RMSNorm over the last dimension: out[r, i] = x[r, i] / sqrt(mean_j x[r, j]² + eps) · weight[i]
// One workgroup per row; WORKGROUP threads stride over the row, then a shared-memory tree reduction.
// Serves hidden-state norms (rows = tokens, cols = hidden) and per-head q/k norms (rows = tokens·heads).
// #include "lib/weights"

struct Params {
  rows: u32,     // number of rows
  cols: u32,     // row length
  eps: f32,      // variance epsilon
  x_stride: u32, // elements between consecutive rows of x and out (>= cols)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [rows, x_stride]
@group(0) @binding(2) var<storage, read> weight: array<u32>;    // [cols] in WEIGHT_DTYPE words
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [rows, x_stride]

override WORKGROUP: u32 = 256u;
var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  if (row >= params.rows) { return; }
  let base = row * params.x_stride;
  var sum_sq = 0.0;
  for (var i = lid; i < params.cols; i += WORKGROUP) {
    let v = x[base + i];
    sum_sq += v * v;
  }
  partial[lid] = sum_sq;
  workgroupBarrier();
  for (var stride = WORKGROUP / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let inv_rms = inverseSqrt(partial[0] / f32(params.cols) + params.eps);
  for (var i = lid; i < params.cols; i += WORKGROUP) {
    out[base + i] = x[base + i] * inv_rms * decode_weight(weight[weight_word(i)], i);
  }
}
