// Grouped expert matmul, first half of SwiGLU: for every row r of the dispatch plan (expert e, token t),
//   h[r, j] = silu(x[t]·Wg[e, j]) · (x[t]·Wu[e, j]),  j < I,   silu(g) = g / (1 + exp(-g))
// (gpt-oss: biases added to both products and the clamped activation of lib/moe_expert_params' gated_act)
// with the fused transformers layout gate_up[e] = [2I, H]: rows 0..I-1 are the gate, I..2I-1 the up projection.
// The plan's tile list gives each y-workgroup (expert, first row); rows map to tokens through the plan's row keys
// (token·8 + slot), so x rows are gathered, not copied. x-workgroups cover I in TILE_COLS = 4·WG_N columns.
//
// Tiling and K loop: lib/matmul_core (the dense matmul's), with gate and up side by side: of the TILE_N = 8·WG_N
// staged weight rows, the first TILE_COLS are gate rows n0 .. n0 + TILE_COLS, the rest the same up rows, so a
// thread's acc[2i] is its row i's gate product and acc[2i + 1] the up product of the same 4 columns. The prologue
// (x_span, w_span) gathers x rows through row_token and offsets W into the tile's expert.
// ALIGNED (H % 4 == 0, and % 8 for f16/bf16): 16-byte loads; otherwise element by element. Workgroups past the plan's
// tile count, or whose expert lives in another weight binding, return at once (worst-case grid, no indirect dispatch).
// The same kernel runs dense SwiGLU MLPs (shared experts) with a one-expert plan whose rows are all tokens.
// x, weights and h are viewed as vec4 arrays: allocate them with sizes rounded up to 16 bytes.
// #include "lib/weights"
// #include "lib/moe_expert_params"
// #include "lib/matmul_core"

@group(0) @binding(0) var<uniform> P: ExpertParams;                // k = H, n = I
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;        // [tokens, H]
@group(0) @binding(2) var<storage, read> plan: array<u32>;           // dispatch plan (row_key = token·8 + slot)
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;        // [num_experts, 2I, H] WEIGHT_DTYPE words
@group(0) @binding(4) var<storage, read_write> h: array<vec4<f32>>;  // [rows, I]
@group(0) @binding(5) var<storage, read> bias: array<f32>;           // [E, 2I] gate then up biases (has_bias = 1)

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override TILE_K: u32 = 16u;      // 8 or 16
override ALIGNED: bool = true;
const W_NK: bool = true;         // weight rows are [n, k]
override TILE_COLS: u32 = WG_N * 4u; // output columns per workgroup

var<workgroup> row_token: array<u32, 128>; // token of each tile row (NO_ROW past the expert's rows)
var<workgroup> tile_info: vec4<u32>;       // plan_tile of this workgroup

var<private> gbase: u32; // element offset of the expert's gate rows in this binding
var<private> n0: u32;    // first output column of this workgroup

const NO_ROW: u32 = 0xffffffffu;

// Tile row m (0 .. TILE_M): x row of its token.
fn x_span(m: u32, k: u32) -> vec2<u32> {
  let K = P.k;
  let tok = row_token[m];
  return vec2<u32>(tok * K + k, select(0u, min(4u, K - k), tok != NO_ROW && k < K));
}

// Staged weight row c (0 .. TILE_N): gate row n0 + c, then up row n0 + c - TILE_COLS.
fn w_span(c: u32, k: u32) -> vec2<u32> {
  let K = P.k;
  let I = P.n;
  let col = n0 + select(c, c - TILE_COLS, c >= TILE_COLS);
  let row = select(col, I + col, c >= TILE_COLS);
  return vec2<u32>(gbase + row * K + k, select(0u, min(UK, K - k), col < I && k < K));
}

fn store_h(row: u32, n: u32, g: vec4<f32>, u: vec4<f32>) {
  let I = P.n;
  if (row >= tile_info.z || n >= I) { return; }
  var bg = vec4<f32>(0.0);
  var bu = vec4<f32>(0.0);
  if (HAS_BIAS) {
    for (var j = 0u; j < 4u; j++) {
      if (n + j < I) { bg[j] = expert_bias(tile_info.x, n + j); bu[j] = expert_bias(tile_info.x, I + n + j); }
    }
  }
  let v = gated_act(g + bg, u + bu);
  let base = row * I + n;
  if ((I & 3u) == 0u) {
    h[base >> 2u] = v;
  } else {
    for (var j = 0u; j < 4u; j++) {
      if (n + j < I) { let e = base + j; h[e >> 2u][e & 3u] = v[j]; }
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
  for (var r = lid; r < TILE_M; r += WG_SIZE) {
    let row = row0 + r;
    row_token[r] = select(NO_ROW, plan[P.off_row_key + row] / 8u, row < info.z);
  }
  workgroupBarrier();
  gbase = (info.x - P.first_expert) * 2u * P.n * P.k;
  n0 = wg.x * TILE_COLS;
  multiply_all(lid, local.x, local.y, 0u, 0u, P.k, info.z - row0);

  for (var i = 0u; i < 8u; i++) {
    store_h(row0 + tile_row(local.y, i), n0 + local.x * 4u, acc[2u * i], acc[2u * i + 1u]);
  }
}
