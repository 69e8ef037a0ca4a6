// Skinny matmul for decode (1–16 rows):  y[r, n] = Σ_k x[r, k] · W(n, k)  for r < rows ≤ ROWS, or with ACCUMULATE
// y[r, n] += alpha · Σ_k x[r, k] · W(n, k) (a residual add fused: y is the residual stream, alpha its multiplier).
// W(n, k) = W[n, k] when W_NK (stored [N, K], checkpoints' [out, in]) and W[k, n] otherwise. x, y f32; W f32, f16 or
// bf16 as raw 32-bit words (lib/weights), decoded in registers; accumulation f32.
//
// The problem is reading W once at full memory bandwidth: every weight is used ROWS times, x stays in L1/L2.
// One workgroup of WG_K × WG_N threads owns a block of outputs and splits K among its WG_K threads:
//   W_NK: thread (tk, tn) owns output columns n = n0 + tn·NT + j (j < NT) and reads 16 bytes of each of those
//         W rows at a time (4 f32 or 8 f16/bf16), striding through K by WG_K units; consecutive tk read consecutive
//         16-byte units of a row, so a warp's loads are contiguous.
//   !W_NK: thread (tn, tk) owns 4 consecutive columns and reads W[k, n .. n+3] for k = tk, tk + WG_K, …;
//         consecutive tn read consecutive 16 (f32) or 8 (f16/bf16) bytes of a W row.
// Each thread keeps ROWS × outputs partial sums in registers (one row: a vec4; more: a private array); the WG_K
// partials of an output are summed through shared memory, four x rows at a time (partials padded by one float per
// output against bank conflicts).
// ROWS is compiled in (the host keeps pipelines for 1, 2, 4, 8, 16); params.M ≤ ROWS rows are computed, the others
// re-read row M-1 and are not stored.
// ALIGNED needs K % 4 == 0 and the W row length (K for W_NK, N otherwise) a multiple of 4 (f32) or 8 (f16/bf16);
// otherwise the same loops read element by element. x, W and y are viewed as vec4 arrays: allocate them with sizes
// rounded up to 16 bytes.
// Entry point main_norm (NORM, one row, W_NK, dense W): RMSNorm of x folded in. Each workgroup reads the row into
// workgroup memory, sums its squares, and scales it in place by inv_rms · norm_w[k] (the same x · inv_rms · w as
// shaders/rmsnorm.wgsl) before the products; only the sum's order differs from the norm kernel's.
// Block-quantised W runs in gemv_quant.wgsl.
// #include "lib/weights"

struct Params {
  M: u32, // rows of x and y (1 ≤ M ≤ ROWS)
  N: u32, // columns of y (output features)
  K: u32, // columns of x (input features)
  alpha: f32, // ACCUMULATE: multiplies the product added to y
  eps: f32,   // main_norm: RMSNorm epsilon
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;        // [M, K] f32, row-major
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;        // [N, K] (W_NK) or [K, N], WEIGHT_DTYPE words/blocks
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;  // [M, N] f32, row-major
@group(0) @binding(4) var<storage, read> norm_w: array<u32>;         // main_norm: [K] RMSNorm weight, WEIGHT_DTYPE words

override ROWS: u32 = 1u;         // rows compiled in: 1, 2, 4, 8 or 16
override WG_K: u32 = 32u;        // threads splitting K
override WG_N: u32 = 4u;         // thread groups along N
override NT: u32 = 2u;           // W_NK: output columns per thread (≤ 4)
override W_NK: bool = true;
override ALIGNED: bool = true;
override ACCUMULATE: bool = false;
override NORM: bool = false;     // main_norm: x read from xs, the normalised row
override NORM_K4: u32 = 1u;      // main_norm: ceil(K / 4), the row's 16-byte units

override WG_SIZE: u32 = WG_K * WG_N;
override E: u32 = select(4u, NT, W_NK);          // outputs per thread per row
override BLOCK_N: u32 = WG_N * E;                // output columns per workgroup
override CHUNK: u32 = min(ROWS, 4u);             // x rows reduced per shared-memory round
override RED_SIZE: u32 = CHUNK * BLOCK_N * (WG_K + 1u);
var<workgroup> red: array<f32, RED_SIZE>;        // [CHUNK rows][E][WG_N][WG_K + 1] partial sums

var<private> acc: array<f32, 64>;                // [ROWS][E] partial sums of this thread (ROWS·E ≤ 64)
var<workgroup> xs: array<vec4<f32>, NORM_K4>;     // main_norm: the normalised x row
var<workgroup> norm_red: array<f32, WG_SIZE>;     // main_norm: partial sums of squares

// x as the products read it: the bound row, or (NORM) its normalised copy.
fn x_vec(i: u32) -> vec4<f32> {
  if (NORM) { return xs[i]; }
  return x[i];
}

fn x_scalar(i: u32) -> f32 {
  return x_vec(i >> 2u)[i & 3u];
}

fn w_elem(e: u32) -> f32 {
  return decode_weight(w[weight_word(e) >> 2u][weight_word(e) & 3u], e);
}

// Four decoded weights from the 16-byte unit at word index q·4 (f32) — or eight (f16/bf16) as two vec4s.
fn w_unit_f32(q: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(w[q]);
}

fn w_unit_half(q: u32) -> array<vec4<f32>, 2> {
  let v = w[q];
  return array<vec4<f32>, 2>(
    vec4<f32>(decode_pair(v.x), decode_pair(v.y)),
    vec4<f32>(decode_pair(v.z), decode_pair(v.w)),
  );
}

// The 16-byte unit u of W row `row` (units per row) times the x elements it meets: x0 (f32 weights), x0 and x1 (f16/bf16).
fn unit_dot(row: u32, u: u32, units: u32, x0: vec4<f32>, x1: vec4<f32>) -> f32 {
  if (WEIGHT_DTYPE == 0u) { return dot(x0, w_unit_f32(row * units + u)); }
  let wv = w_unit_half(row * units + u);
  return dot(x0, wv[0]) + dot(x1, wv[1]);
}

// W stored [N, K]: dot products of NT rows of W with ROWS rows of x.
fn accumulate_nk(tk: u32, n_first: u32) {
  let K = params.K;
  let last_row = params.M - 1u;
  var rows_n: array<u32, 4>; // W row of each output, clamped into the matrix (extra outputs are not stored)
  for (var j = 0u; j < NT; j++) { rows_n[j] = min(n_first + j, params.N - 1u); }
  if (ALIGNED && ROWS == 1u) {
    // One row (decode): the NT sums in a vec4 with constant indices, not in acc, which is indexed by loop counters and
    // which SwiftShader keeps in memory (the demo's LM head ran 3× slower there).
    let units = select(K >> 3u, K >> 2u, WEIGHT_DTYPE == 0u);
    var a = vec4<f32>(0.0);
    for (var u = tk; u < units; u += WG_K) {
      var x0: vec4<f32>;
      var x1 = vec4<f32>(0.0);
      if (WEIGHT_DTYPE == 0u) { x0 = x_vec(u); } else { x0 = x_vec(2u * u); x1 = x_vec(2u * u + 1u); }
      a.x += unit_dot(rows_n[0], u, units, x0, x1);
      if (NT > 1u) { a.y += unit_dot(rows_n[1], u, units, x0, x1); }
      if (NT > 2u) { a.z += unit_dot(rows_n[2], u, units, x0, x1); }
      if (NT > 3u) { a.w += unit_dot(rows_n[3], u, units, x0, x1); }
    }
    acc[0] = a.x; acc[1] = a.y; acc[2] = a.z; acc[3] = a.w;
  } else if (ALIGNED && WEIGHT_DTYPE == 0u) {
    let units = K >> 2u; // 16-byte units per row
    for (var u = tk; u < units; u += WG_K) {
      var wv: array<vec4<f32>, 4>;
      for (var j = 0u; j < NT; j++) { wv[j] = w_unit_f32(rows_n[j] * units + u); }
      for (var r = 0u; r < ROWS; r++) {
        let xv = x_vec(min(r, last_row) * units + u);
        for (var j = 0u; j < NT; j++) { acc[r * NT + j] += dot(xv, wv[j]); }
      }
    }
  } else if (ALIGNED) {
    let units = K >> 3u;
    for (var u = tk; u < units; u += WG_K) {
      var wv: array<array<vec4<f32>, 2>, 4>;
      for (var j = 0u; j < NT; j++) { wv[j] = w_unit_half(rows_n[j] * units + u); }
      for (var r = 0u; r < ROWS; r++) {
        let xb = min(r, last_row) * (K >> 2u) + 2u * u;
        let x0 = x_vec(xb);
        let x1 = x_vec(xb + 1u);
        for (var j = 0u; j < NT; j++) { acc[r * NT + j] += dot(x0, wv[j][0]) + dot(x1, wv[j][1]); }
      }
    }
  } else {
    for (var k = tk; k < K; k += WG_K) {
      var wv: array<f32, 4>;
      for (var j = 0u; j < NT; j++) { wv[j] = w_elem(rows_n[j] * K + k); }
      for (var r = 0u; r < ROWS; r++) {
        let xk = x_scalar(min(r, last_row) * K + k);
        for (var j = 0u; j < NT; j++) { acc[r * NT + j] += xk * wv[j]; }
      }
    }
  }
}

// W stored [K, N]: 4 consecutive columns n_first .. n_first+3 of W times ROWS rows of x.
fn accumulate_kn(tk: u32, n_first: u32) {
  let K = params.K;
  let N = params.N;
  let last_row = params.M - 1u;
  for (var k = tk; k < K; k += WG_K) {
    var wv = vec4<f32>(0.0);
    if (ALIGNED) {
      if (n_first < N) {
        let e = k * N + n_first;
        if (WEIGHT_DTYPE == 0u) {
          wv = w_unit_f32(e >> 2u);
        } else {
          let q = w[e >> 3u];
          let pair = select(q.xy, q.zw, (e & 4u) != 0u);
          wv = vec4<f32>(decode_pair(pair.x), decode_pair(pair.y));
        }
      }
    } else {
      for (var c = 0u; c < 4u; c++) {
        if (n_first + c < N) { wv[c] = w_elem(k * N + n_first + c); }
      }
    }
    for (var r = 0u; r < ROWS; r++) {
      let xk = x_scalar(min(r, last_row) * K + k);
      for (var c = 0u; c < 4u; c++) { acc[r * 4u + c] += xk * wv[c]; }
    }
  }
}

fn store_y(r: u32, n: u32, v: f32) {
  if (r >= params.M || n >= params.N) { return; }
  let e = r * params.N + n;
  if (ACCUMULATE) { y[e >> 2u][e & 3u] = y[e >> 2u][e & 3u] + params.alpha * v; } else { y[e >> 2u][e & 3u] = v; }
}

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  gemv(wg, groups, lid);
}

// xs = x[0, :] · inv_rms · norm_w, inv_rms = 1 / sqrt(mean(x[0, :]²) + eps). WG_SIZE is a power of two.
fn normalise_x(lid: u32) {
  let K = params.K;
  var ss = 0.0;
  for (var i = lid; i < NORM_K4; i += WG_SIZE) {
    let v = select(vec4<f32>(0.0), x[i], vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(K));
    xs[i] = v;
    ss += dot(v, v);
  }
  norm_red[lid] = ss;
  workgroupBarrier();
  for (var s = WG_SIZE / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { norm_red[lid] += norm_red[lid + s]; }
    workgroupBarrier();
  }
  let inv_rms = inverseSqrt(norm_red[0] / f32(K) + params.eps);
  for (var i = lid; i < NORM_K4; i += WG_SIZE) {
    var g = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
      let e = 4u * i + c;
      if (e < K) { g[c] = decode_weight(norm_w[weight_word(e)], e); }
    }
    xs[i] = xs[i] * inv_rms * g;
  }
  workgroupBarrier();
}

@compute @workgroup_size(WG_SIZE)
fn main_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  normalise_x(lid);
  gemv(wg, groups, lid);
}

fn gemv(wg: vec3<u32>, groups: vec3<u32>, lid: u32) {
  // Blocks of BLOCK_N outputs, numbered row-major over a 2D grid (one dimension allows at most 65535 workgroups,
  // fewer than a 151936-token vocabulary needs); the grid's last row may overhang N.
  let n0 = (wg.y * groups.x + wg.x) * BLOCK_N;
  if (n0 >= params.N) { return; }
  // W_NK: tk varies fastest (a warp walks along a W row); otherwise tn does (a warp walks along n).
  let tk = select(lid / WG_N, lid % WG_K, W_NK);
  let tn = select(lid % WG_N, lid / WG_K, W_NK);
  if (W_NK) {
    accumulate_nk(tk, n0 + tn * NT);
  } else {
    accumulate_kn(tk, n0 + tn * 4u);
  }

  let outputs = CHUNK * BLOCK_N; // per round: [CHUNK rows][E][WG_N]
  for (var r0 = 0u; r0 < ROWS; r0 += CHUNK) {
    for (var i = 0u; i < CHUNK; i++) {
      for (var j = 0u; j < E; j++) {
        red[((i * E + j) * WG_N + tn) * (WG_K + 1u) + tk] = acc[(r0 + i) * E + j];
      }
    }
    workgroupBarrier();
    for (var o = lid; o < outputs; o += WG_SIZE) {
      var sum = 0.0;
      for (var t = 0u; t < WG_K; t++) { sum += red[o * (WG_K + 1u) + t]; }
      let i = o / BLOCK_N;
      let j = (o / WG_N) % E;
      let t_n = o % WG_N;
      store_y(r0 + i, n0 + t_n * E + j, sum);
    }
    workgroupBarrier();
  }
}
