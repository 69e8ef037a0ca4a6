// Skinny matmul on block-quantised weights for decode (1–16 rows):  y[r, n] (+)= Σ_k x[r, k] · W[n, k]  for r < M.
// W [N, K] (checkpoints' [out, in]) in Q8_0, Q4_K, Q5_K, Q6_K or MXFP4 as the GGUF file stores it (K a whole number
// of blocks), decoded in registers (lib/quant_unit); x, y f32, accumulation f32.
// Bound by reading W once. A workgroup of WG_K × WG_N threads owns BLOCK_N = WG_N·NT output columns: thread
// (tk, tn) owns columns n0 + tn·NT + j (j < NT) and strides over their rows' 64-element units, all NT rows' unit
// at once (lib/gemv_core); the WG_K partial sums of an output are added through shared memory.
// ROWS is compiled in (the host keeps pipelines for 1, 2, 4, 8, 16 rows); params.M ≤ ROWS rows are computed.
// #include "lib/gemv_core"

struct Params {
  M: u32, // rows of x and y (1 ≤ M ≤ ROWS)
  N: u32, // columns of y (output features)
  K: u32, // columns of x (input features), a whole number of blocks
  alpha: f32, // ACCUMULATE: multiplies the product added to y (GEMV_PARAMS, shared with gemv.wgsl)
  eps: f32,   // unused here (gemv.wgsl's folded norm)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;        // [M, K] f32, row-major
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;        // [N, K] in blocks, rows back to back
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;  // [M, N] f32, row-major

override ROWS: u32 = 1u;         // rows compiled in: 1, 2, 4, 8 or 16
override WG_K: u32 = 32u;        // threads splitting a row's units
override WG_N: u32 = 2u;         // thread groups along N
override NT: u32 = 4u;           // output columns per thread (≤ 8, ROWS·NT ≤ 64)
override ACCUMULATE: bool = false;
override ALIGNED: bool = true;   // (dense weights only; unused here)

override XR: u32 = ROWS;
override NW: u32 = NT;
override WG_SIZE: u32 = WG_K * WG_N;
override BLOCK_N: u32 = WG_N * NT;

fn x_quad(r: u32, i: u32) -> vec4<f32> {
  return x[r * (params.K >> 2u) + i];
}

fn x_one(r: u32, k: u32) -> f32 {
  return x_quad(r, k >> 2u)[k & 3u];
}

fn x_live(r: u32) -> bool {
  return r < params.M;
}

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  // Blocks of BLOCK_N outputs, numbered row-major over a 2D grid; the grid's last row may overhang N.
  let n0 = (wg.y * groups.x + wg.x) * BLOCK_N;
  if (n0 >= params.N) { return; }
  let tk = lid % WG_K; // consecutive threads read consecutive units of a row
  let tn = lid / WG_K;
  let row_bytes = quant_row_bytes(params.K);
  var rows: array<u32, 8>; // byte offset of each output's W row, clamped into the matrix (extra outputs not stored)
  for (var j = 0u; j < NT; j++) { rows[j] = min(n0 + tn * NT + j, params.N - 1u) * row_bytes; }
  core_accumulate(tk, rows, params.K);
  core_share(tk, tn);

  for (var o = lid; o < ROWS * BLOCK_N; o += WG_SIZE) {
    let r = o / BLOCK_N;
    let c = o % BLOCK_N; // = t_n · NT + j
    let n = n0 + c;
    if (r < params.M && n < params.N) {
      let v = core_sum(r, c / NT, c % NT);
      let e = r * params.N + n;
      if (ACCUMULATE) { y[e >> 2u][e & 3u] = y[e >> 2u][e & 3u] + params.alpha * v; } else { y[e >> 2u][e & 3u] = v; }
    }
  }
}
