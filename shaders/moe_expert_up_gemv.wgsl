// Grouped expert matmul for few rows per expert (decode): the gate/up half of SwiGLU,
//   h[r, j] = silu(x[t]·Wg[e, j]) · (x[t]·Wu[e, j]),  j < I,   gate_up[e] = [2I, H] (rows 0..I-1 gate, I..2I-1 up)
// (gpt-oss: biases added to both products and the clamped activation of lib/moe_expert_params' gated_act)
// for plan tiles of at most R rows (R compiled in: 1, 2, 4 or 8, the smallest ≥ the step's tokens, so a decode step
// carries one row per tile and no code for others). Bound by reading the weights once, so it runs on the dense
// GEMV's footing (lib/gemv_core): a workgroup of WG_K × WG_N threads owns BLOCK_N = WG_N·NT output columns of one
// tile's expert; thread (tk, tn) owns columns j0 + c (c < NT) — 2·NT weight rows, gate and up of each — and strides
// over H in units (16 bytes of f32/f16/bf16 with ALIGNED: H % 4 == 0, % 8 for 16-bit weights; 64 elements of
// block-quantised weights, H a whole number of blocks; single elements otherwise), all 2·NT rows' unit at once. Row
// accumulators stay in registers, only for the tile's rows; the WG_K partials of each sum meet in shared memory.
// Grid: x = ceil(I / BLOCK_N) column blocks, y = plan tiles (those past the tile count, or of experts in another
// weight binding, return at once). x and the weights are viewed as vec4 arrays: allocate them rounded up to 16 bytes.
// #include "lib/gemv_core"
// #include "lib/moe_expert_params"

@group(0) @binding(0) var<uniform> P: ExpertParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;       // [tokens, H]
@group(0) @binding(2) var<storage, read> plan: array<u32>;          // dispatch plan (row_key = token·8 + slot)
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;       // [num_experts, 2I, H] WEIGHT_DTYPE words/blocks
@group(0) @binding(4) var<storage, read_write> h: array<f32>;       // [rows, I]
@group(0) @binding(5) var<storage, read> bias: array<f32>;          // [E, 2I] gate then up biases (has_bias = 1)

override ALIGNED: bool = true;
override WG_K: u32 = 32u;  // threads splitting a weight row
override WG_N: u32 = 2u;   // thread groups along the output columns
override NT: u32 = 2u;     // output columns per thread (≤ 4)
override R: u32 = 8u;      // rows per plan tile, ≤ R_MAX (the host sets the plan's tile_m to this)
const R_MAX: u32 = 8u;

override XR: u32 = R;
override NW: u32 = 2u * NT; // weight rows per thread: gate row of column c at 2c, up row at 2c + 1
override WG_SIZE: u32 = WG_K * WG_N;
override BLOCK_N: u32 = WG_N * NT;

var<private> tok: array<u32, R_MAX>; // x element offset of each row's token
var<private> nrows: u32;

fn x_quad(r: u32, i: u32) -> vec4<f32> {
  return x[(tok[r] >> 2u) + i];
}

fn x_one(r: u32, k: u32) -> f32 {
  let i = tok[r] + k;
  return x[i >> 2u][i & 3u];
}

fn x_live(r: u32) -> bool {
  return R == 1u || r < nrows; // a tile has at least one row
}

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  // Every thread reads its tile from the plan (the same words for all: broadcast reads, no barrier); one-row tiles
  // skip the row count.
  let tile = wg.y;
  let info = plan_tile_head(tile);
  if (!tile_in_binding(tile, info)) { return; }
  if (R == 1u) {
    nrows = 1u;
  } else {
    nrows = min(R, plan[P.off_offsets + info.x] + plan[P.off_kept + info.x] - info.y);
  }
  let K = P.k;
  let I = P.n;
  let tk = li % WG_K;
  let tn = li / WG_K;
  let j0 = wg.x * BLOCK_N + tn * NT;
  for (var r = 0u; r < R; r++) { tok[r] = plan[P.off_row_key + info.y + min(r, nrows - 1u)] / 8u * K; }

  // Weight rows of this thread's columns (clamped into the expert; extra columns are not stored): byte offsets for
  // block-quantised weights, element offsets otherwise.
  let gate0 = (info.x - P.first_expert) * 2u * I;
  let unit = select(K, quant_row_bytes(K), is_quant());
  var rows: array<u32, 8>;
  for (var c = 0u; c < NT; c++) {
    let j = min(j0 + c, I - 1u);
    rows[2u * c] = (gate0 + j) * unit;
    rows[2u * c + 1u] = (gate0 + I + j) * unit;
  }
  core_accumulate(tk, rows, K);
  core_share(tk, tn);

  for (var o = li; o < R * BLOCK_N; o += WG_SIZE) {
    let r = o / BLOCK_N;
    let col = o % BLOCK_N; // = t_n · NT + c
    let j = wg.x * BLOCK_N + col;
    if (r < nrows && j < I) {
      let t_n = col / NT;
      let c = col % NT;
      let gate = core_sum(r, t_n, 2u * c) + expert_bias(info.x, j);
      let up = core_sum(r, t_n, 2u * c + 1u) + expert_bias(info.x, I + j);
      h[(info.y + r) * I + j] = gated_act(vec4<f32>(gate), vec4<f32>(up)).x;
    }
  }
}
