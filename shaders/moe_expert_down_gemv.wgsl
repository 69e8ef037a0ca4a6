// Grouped expert matmul for few rows per expert (decode): the down half of SwiGLU,
//   y[r, n] = h[r]·Wd[e, n] (+ bias[e, n], gpt-oss),  n < H,   down[e] = [H, I]
// for plan tiles of at most R rows (R compiled in: 1, 2, 4 or 8, as in moe_expert_up_gemv), on the dense GEMV's
// footing (lib/gemv_core): a workgroup of WG_K × WG_N threads owns BLOCK_N = WG_N·NT output columns of one tile's
// expert; thread (tk, tn) owns columns n0 + c (c < NT), one weight row each, and strides over I in units (16 bytes of
// f32/f16/bf16 with ALIGNED: I % 4 == 0, % 8 for 16-bit weights; 64 elements of block-quantised weights, I a whole
// number of blocks; single elements otherwise), all NT rows' unit at once; row accumulators in registers, only for
// the tile's rows; the WG_K partials meet in shared memory.
// Grid: x = ceil(H / BLOCK_N), y = plan tiles (extra tiles and other bindings' experts return at once).
// h and the weights are viewed as vec4 arrays: allocate them with sizes rounded up to 16 bytes.
// #include "lib/gemv_core"
// #include "lib/moe_expert_params"

@group(0) @binding(0) var<uniform> P: ExpertParams;
@group(0) @binding(1) var<storage, read> hin: array<vec4<f32>>;   // [rows, I]
@group(0) @binding(2) var<storage, read> plan: array<u32>;        // dispatch plan
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;     // [num_experts, H, I] WEIGHT_DTYPE words/blocks
@group(0) @binding(4) var<storage, read_write> y: array<f32>;     // [rows, H]
@group(0) @binding(5) var<storage, read> bias: array<f32>;        // [E, H] down biases (has_bias = 1)

override ALIGNED: bool = true;
override WG_K: u32 = 32u;  // threads splitting a weight row
override WG_N: u32 = 2u;   // thread groups along the output columns
override NT: u32 = 4u;     // output columns per thread (≤ 8)
override R: u32 = 8u;      // rows per plan tile (1, 2, 4 or 8)

override XR: u32 = R;
override NW: u32 = NT;
override WG_SIZE: u32 = WG_K * WG_N;
override BLOCK_N: u32 = WG_N * NT;

var<private> hrow: u32;  // element offset of the tile's first h row
var<private> nrows: u32;
var<private> kdim: u32; // I

fn x_quad(r: u32, i: u32) -> vec4<f32> {
  return hin[((hrow + r * kdim) >> 2u) + i];
}

fn x_one(r: u32, k: u32) -> f32 {
  let i = hrow + r * kdim + k;
  return hin[i >> 2u][i & 3u];
}

fn x_live(r: u32) -> bool {
  return R == 1u || r < nrows; // a tile has at least one row
}

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  // Every thread reads its tile from the plan (broadcast reads, no barrier); one-row tiles skip the row count.
  let tile = wg.y;
  let info = plan_tile_head(tile);
  if (!tile_in_binding(tile, info)) { return; }
  if (R == 1u) {
    nrows = 1u;
  } else {
    nrows = min(R, plan[P.off_offsets + info.x] + plan[P.off_kept + info.x] - info.y);
  }
  let K = P.k;
  kdim = K;
  let N = P.n;
  let tk = li % WG_K;
  let tn = li / WG_K;
  let n0 = wg.x * BLOCK_N + tn * NT;
  hrow = info.y * K;

  // Weight rows of this thread's columns (clamped; extra columns are not stored): byte or element offsets.
  let unit = select(K, quant_row_bytes(K), is_quant());
  var rows: array<u32, 8>;
  for (var c = 0u; c < NT; c++) { rows[c] = ((info.x - P.first_expert) * N + min(n0 + c, N - 1u)) * unit; }
  core_accumulate(tk, rows, K);
  core_share(tk, tn);

  for (var o = li; o < R * BLOCK_N; o += WG_SIZE) {
    let r = o / BLOCK_N;
    let col = o % BLOCK_N;
    let n = wg.x * BLOCK_N + col;
    if (r < nrows && n < N) {
      y[(info.y + r) * N + n] = core_sum(r, col / NT, col % NT) + expert_bias(info.x, n);
    }
  }
}
