// Row-broadcast bias add, in place: x[t, i] += bias[i] for t < rows, i < cols.
// Used after linear layers whose checkpoint has a bias (Qwen2-MoE q/k/v projections).
// One thread per element in a grid-stride loop.
// #include "lib/weights"

struct Params {
  rows: u32, // tokens
  cols: u32, // features (bias length)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>; // [rows, cols] f32, updated in place
@group(0) @binding(2) var<storage, read> bias: array<u32>;    // [cols] in WEIGHT_DTYPE words

override WORKGROUP: u32 = 256u;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let count = params.rows * params.cols;
  for (var i = gid.x; i < count; i += groups.x * WORKGROUP) {
    let c = i % params.cols;
    x[i] = x[i] + decode_weight(bias[weight_word(c)], c);
  }
}
