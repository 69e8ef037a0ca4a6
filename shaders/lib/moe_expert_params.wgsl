// Uniform of the grouped expert matmuls (moe_expert_up/down[_gemv].wgsl) and their view of the dispatch plan.
// Field order must match EXPERT_PARAMS in src/engine/kernels/moe-layout.ts (tests/unit/wgsl-structs.test.ts).
// The including shader binds the uniform as `P`, the plan buffer as `plan` and the experts' biases as `bias` (f32;
// read only when HAS_BIAS).
struct ExpertParams {
  k: u32,               // reduction length (up: H, down: I)
  n: u32,               // output columns (up: I, down: H)
  first_expert: u32,    // this binding holds experts [first_expert, first_expert + num_experts)
  num_experts: u32,
  off_header: u32,      // plan-buffer offsets (words)
  off_offsets: u32,
  off_kept: u32,
  off_tile_expert: u32,
  off_tile_row: u32,
  off_row_key: u32,     // [rows] token·8 + slot of each row
  has_bias: u32,        // 1: add bias[e, column] (gpt-oss: up bias [E, 2I] gate then up, down bias [E, H])
  bias_stride: u32,     // floats per expert in `bias` (up: 2I, down: H)
  act_limit: f32,       // gated activation (up kernels): g = min(gate, limit), u = clamp(up, ±limit);
  act_alpha: f32,       //   a = g·σ(alpha·g)·(u + up_offset). SwiGLU: limit = f32 max, alpha 1, up_offset 0
  act_up_offset: f32,
  _pad0: u32,
}

// Plan tile `tile` as (expert, first row, end of the expert's rows, tile count); (0, 0, 0, count) past the count.
fn plan_tile(tile: u32) -> vec4<u32> {
  let n_tiles = plan[P.off_header];
  if (tile >= n_tiles) { return vec4<u32>(0u, 0u, 0u, n_tiles); }
  let e = plan[P.off_tile_expert + tile];
  return vec4<u32>(e, plan[P.off_tile_row + tile], plan[P.off_offsets + e] + plan[P.off_kept + e], n_tiles);
}

// plan_tile's expert (x), first row (y) and tile count (w) without the row end (z = 0), read side by side: the expert
// and row are read whether the tile exists or not (the grid stays inside the plan's tile capacity), so no read waits
// on another and a weight read waits on one. For kernels where every thread reads its own tile (the gemv kernels).
fn plan_tile_head(tile: u32) -> vec4<u32> {
  return vec4<u32>(plan[P.off_tile_expert + tile], plan[P.off_tile_row + tile], 0u, plan[P.off_header]);
}

// Whether tile `tile` (described by plan_tile or plan_tile_head) exists and its expert lives in this weight binding.
fn tile_in_binding(tile: u32, info: vec4<u32>) -> bool {
  return tile < info.w && info.x >= P.first_expert && info.x < P.first_expert + P.num_experts;
}

// Whether the experts have biases (gpt-oss), compiled in: an epilogue that may read biases costs the tiled kernels
// ~5× at prefill on an H200 even when P.has_bias = 0 (granite-1b-a400m width, 512 tokens: 242 → 42 ms), so models
// without biases get pipelines without that code. P.has_bias mirrors it.
override HAS_BIAS: bool = false;

// Bias of output column j of expert e (global index), 0 without biases.
fn expert_bias(e: u32, j: u32) -> f32 {
  if (!HAS_BIAS) { return 0.0; }
  return bias[e * P.bias_stride + j];
}

// The experts' gated activation of gate and up pre-activations (see ExpertParams.act_*).
fn gated_act(gate: vec4<f32>, up: vec4<f32>) -> vec4<f32> {
  let g = min(gate, vec4<f32>(P.act_limit));
  let u = clamp(up, vec4<f32>(-P.act_limit), vec4<f32>(P.act_limit));
  return g / (vec4<f32>(1.0) + exp(-P.act_alpha * g)) * (u + vec4<f32>(P.act_up_offset));
}

// Elements per weight row (lib/matmul_stage addresses block-quantised weights by row).
fn w_row_length() -> u32 {
  return P.k;
}
