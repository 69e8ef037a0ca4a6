// The loop shared by the GEMVs that split every weight row over WG_K threads (gemv_quant, moe_expert_up_gemv,
// moe_expert_down_gemv). A thread holds NW weight rows and XR rows of x; it strides over the rows' units
// u = tk, tk + WG_K, … and keeps XR × NW partial sums in registers (acc[r·NW + j]). All NW rows' unit u is loaded
// before any arithmetic, so a thread has NW loads (NW·48 bytes of Q4_K, NW·16 of bf16) in flight, and every x value
// it reads serves NW weights. Then the WG_K partials of each (x row, weight row) meet in shared memory (core_share)
// and one thread adds them (core_sum).
// Units: block-quantised weights (lib/quant_unit) 64 elements; f32/f16/bf16 with ALIGNED 16 bytes = UK elements (the
// rows' element offsets and K multiples of UK); otherwise single elements.
// The includer declares the overrides XR (x rows compiled in), NW (≤ 8), WG_K, WG_N (thread groups per workgroup)
// and ALIGNED, binds the weights as `w: array<vec4<u32>>`, and defines
//   fn x_quad(r: u32, i: u32) -> vec4<f32>   elements 4i .. 4i + 3 of x row r
//   fn x_one(r: u32, k: u32) -> f32          element k of x row r
//   fn x_live(r: u32) -> bool                whether x row r is computed (its sums stay 0 otherwise)
// #include "lib/quant_unit"

override UK: u32 = select(8u, 4u, WEIGHT_DTYPE == 0u); // dense weights per 16-byte unit
override RED_STRIDE: u32 = WG_K + 1u;                   // one float of padding against bank conflicts
override RED_SIZE: u32 = XR * WG_N * NW * RED_STRIDE;
var<workgroup> red: array<f32, RED_SIZE>;               // [XR][WG_N][NW][RED_STRIDE] partial sums

var<private> acc: array<f32, 64>;                       // [XR][NW] this thread's partial sums (XR·NW ≤ 64)

fn w_word(i: u32) -> u32 {
  return w[i >> 2u][i & 3u];
}

fn w_quad(i: u32) -> vec4<u32> {
  return w[i];
}

// Block-quantised rows starting at the byte offsets `rows`.
fn core_quant(tk: u32, rows: array<u32, 8>, K: u32) {
  for (var u = tk; u < qu_units(K); u += WG_K) {
    var q: array<QUnit, 8>;
    for (var j = 0u; j < NW; j++) { q[j] = qu_load(rows[j], u, K); }
    let segs = qu_segments(u, K);
    for (var seg = 0u; seg < 4u; seg++) {
      if (seg < segs) {
        let i0 = qu_seg_offset(u, seg) >> 2u;
        for (var r = 0u; r < XR; r++) {
          if (x_live(r)) {
            let xv = array<vec4<f32>, 4>(x_quad(r, i0), x_quad(r, i0 + 1u), x_quad(r, i0 + 2u), x_quad(r, i0 + 3u));
            var xs = 0.0;
            if (QU_HAS_MIN) { xs = dot(xv[0] + xv[1] + xv[2] + xv[3], vec4<f32>(1.0)); }
            for (var j = 0u; j < NW; j++) { acc[r * NW + j] += qu_seg_dot(q[j], seg, xv, xs); }
          }
        }
      }
    }
  }
}

// The UK dense weights of the 16-byte unit that starts at element e, as two vec4 (the second 0 for f32).
fn core_unit(e: u32) -> array<vec4<f32>, 2> {
  if (WEIGHT_DTYPE == 0u) {
    return array<vec4<f32>, 2>(bitcast<vec4<f32>>(w[e >> 2u]), vec4<f32>(0.0));
  }
  let v = w[e >> 3u];
  return array<vec4<f32>, 2>(vec4<f32>(decode_pair(v.x), decode_pair(v.y)), vec4<f32>(decode_pair(v.z), decode_pair(v.w)));
}

// Dense rows starting at the element offsets `rows`, 16 bytes at a time.
fn core_units(tk: u32, rows: array<u32, 8>, K: u32) {
  for (var u = tk; u < K / UK; u += WG_K) {
    var wv: array<array<vec4<f32>, 2>, 8>;
    for (var j = 0u; j < NW; j++) { wv[j] = core_unit(rows[j] + u * UK); }
    let i0 = u * (UK / 4u);
    for (var r = 0u; r < XR; r++) {
      if (x_live(r)) {
        let x0 = x_quad(r, i0);
        var x1 = vec4<f32>(0.0);
        if (UK == 8u) { x1 = x_quad(r, i0 + 1u); }
        for (var j = 0u; j < NW; j++) { acc[r * NW + j] += dot(x0, wv[j][0]) + dot(x1, wv[j][1]); }
      }
    }
  }
}

// Dense rows starting at the element offsets `rows`, one element at a time.
fn core_elements(tk: u32, rows: array<u32, 8>, K: u32) {
  for (var k = tk; k < K; k += WG_K) {
    var wv: array<f32, 8>;
    for (var j = 0u; j < NW; j++) {
      let e = rows[j] + k;
      wv[j] = decode_weight(w_word(weight_word(e)), e);
    }
    for (var r = 0u; r < XR; r++) {
      if (x_live(r)) {
        let xk = x_one(r, k);
        for (var j = 0u; j < NW; j++) { acc[r * NW + j] += xk * wv[j]; }
      }
    }
  }
}

// acc += x rows · the NW weight rows (byte offsets for block-quantised weights, element offsets otherwise).
fn core_accumulate(tk: u32, rows: array<u32, 8>, K: u32) {
  if (is_quant()) {
    core_quant(tk, rows, K);
  } else if (ALIGNED) {
    core_units(tk, rows, K);
  } else {
    core_elements(tk, rows, K);
  }
}

// Every thread's partial sums into shared memory (call from uniform control flow: it ends with a barrier).
fn core_share(tk: u32, tn: u32) {
  for (var r = 0u; r < XR; r++) {
    if (x_live(r)) {
      for (var j = 0u; j < NW; j++) { red[((r * WG_N + tn) * NW + j) * RED_STRIDE + tk] = acc[r * NW + j]; }
    }
  }
  workgroupBarrier();
}

// The full sum for x row r (a live one) and weight row j of thread group tn (after core_share).
fn core_sum(r: u32, tn: u32, j: u32) -> f32 {
  let b = ((r * WG_N + tn) * NW + j) * RED_STRIDE;
  var s = 0.0;
  for (var t = 0u; t < WG_K; t++) { s += red[b + t]; }
  return s;
}
