// Uniform of the grouped expert matmuls (moe_expert_up/down[_gemv].wgsl) and their view of the dispatch plan.
// Field order must match EXPERT_PARAMS in src/engine/kernels/moe-layout.ts (tests/unit/wgsl-structs.test.ts).
// The including shader binds the uniform as `P` and the plan buffer as `plan`.
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
  _pad0: u32,
  _pad1: u32,
}

// Plan tile `tile` as (expert, first row, end of the expert's rows, tile count); (0, 0, 0, count) past the count.
fn plan_tile(tile: u32) -> vec4<u32> {
  let n_tiles = plan[P.off_header];
  if (tile >= n_tiles) { return vec4<u32>(0u, 0u, 0u, n_tiles); }
  let e = plan[P.off_tile_expert + tile];
  return vec4<u32>(e, plan[P.off_tile_row + tile], plan[P.off_offsets + e] + plan[P.off_kept + e], n_tiles);
}

// Whether tile `tile` (described by plan_tile) exists and its expert lives in this weight binding.
fn tile_in_binding(tile: u32, info: vec4<u32>) -> bool {
  return tile < info.w && info.x >= P.first_expert && info.x < P.first_expert + P.num_experts;
}

// Elements per weight row (lib/matmul_stage addresses block-quantised weights by row).
fn w_row_length() -> u32 {
  return P.k;
}
