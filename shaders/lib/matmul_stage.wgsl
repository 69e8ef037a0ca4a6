// Global memory → registers for the tiled matmuls (dense: matmul.wgsl, matmul_kmajor.wgsl through lib/matmul_dense;
// grouped experts: moe_expert_up.wgsl, moe_expert_down.wgsl): bounds-checked 16-byte loads of x and of W in its
// weight dtype or block-quantised format (lib/quant), decoded to f32 into this thread's staging registers (x_stage,
// w_stage).
// The including shader declares the bindings x (vec4<f32>) and w (vec4<u32>), the overrides (ALIGNED, W_NK, TILE_*,
// UK, X_UNITS, W_TOTAL, W_UNITS, W_SLOTS, WG_SIZE), the x_stage / w_stage registers, and where each unit lives:
//   fn x_span(m: u32, k: u32) -> vec2<u32>   x[m, k .. k+4): (flat index of the first element, how many lie inside)
//   fn w_span(n: u32, k: u32) -> vec2<u32>   W_NK: W[n, k .. k+UK), else W[k, n .. n+UK): the same pair
//   fn w_row_length() -> u32                 elements per W row (K for W_NK): quantised W is addressed by row
// Quantised W needs W_NK and ALIGNED (UK = 8 weights of one 32-element sub-block per unit).
// With ALIGNED a unit lies wholly inside or wholly outside. How the staged tile is laid out in shared memory
// (store_tile) belongs to the core: lib/matmul_core (matmul.wgsl and the expert kernels) or matmul_kmajor.wgsl.
// #include "lib/quant"

fn x_scalar(i: u32) -> f32 {
  return x[i >> 2u][i & 3u];
}

fn w_word(i: u32) -> u32 {
  return w[i >> 2u][i & 3u];
}

// Element e (flat index into W's logical layout) decoded to f32.
fn w_elem(e: u32) -> f32 {
  return decode_weight(w_word(weight_word(e)), e);
}

// The 4 x values of span s = (first element, count inside); zero past the count.
fn stage_x4(s: vec2<u32>) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (ALIGNED) {
    if (s.y != 0u) { v = x[s.x >> 2u]; }
  } else {
    for (var j = 0u; j < 4u; j++) {
      if (j < s.y) { v[j] = x_scalar(s.x + j); }
    }
  }
  return v;
}

// The UK weights of span s into w_stage[slot .. slot + W_SLOTS); zero past the count.
fn stage_w_unit(slot: u32, s: vec2<u32>) {
  var vals: array<f32, 8>;
  if (ALIGNED) {
    if (s.y != 0u && is_quant()) {
      let K = w_row_length();
      let row = s.x / K; // W row, counting from the start of the binding (experts included)
      let k = s.x - row * K;
      let b = quant_sub(row * quant_row_bytes(K), k >> 5u);
      let g = (k & 31u) >> 2u;
      let lo = quant_group(b, g);
      let hi = quant_group(b, g + 1u);
      vals[0] = lo.x; vals[1] = lo.y; vals[2] = lo.z; vals[3] = lo.w;
      vals[4] = hi.x; vals[5] = hi.y; vals[6] = hi.z; vals[7] = hi.w;
    } else if (s.y != 0u) {
      let e = s.x;
      if (WEIGHT_DTYPE == 0u) {
        let q = w[e >> 2u];
        vals[0] = bitcast<f32>(q.x); vals[1] = bitcast<f32>(q.y);
        vals[2] = bitcast<f32>(q.z); vals[3] = bitcast<f32>(q.w);
      } else {
        let q = w[e >> 3u];
        let p0 = decode_pair(q.x); let p1 = decode_pair(q.y);
        let p2 = decode_pair(q.z); let p3 = decode_pair(q.w);
        vals[0] = p0.x; vals[1] = p0.y; vals[2] = p1.x; vals[3] = p1.y;
        vals[4] = p2.x; vals[5] = p2.y; vals[6] = p3.x; vals[7] = p3.y;
      }
    }
  } else {
    for (var j = 0u; j < UK; j++) {
      if (j < s.y) { vals[j] = w_elem(s.x + j); }
    }
  }
  for (var s = 0u; s < W_SLOTS; s++) {
    w_stage[slot + s] = vec4<f32>(vals[4u * s], vals[4u * s + 1u], vals[4u * s + 2u], vals[4u * s + 3u]);
  }
}

// Global → registers: this thread's share of the x and W tiles starting at (m0, n0, k0).
fn load_tile(lid: u32, m0: u32, n0: u32, k0: u32) {
  for (var i = 0u; i < X_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    let row = u / (TILE_K / 4u);
    let c = u % (TILE_K / 4u);
    x_stage[i] = stage_x4(x_span(m0 + row, k0 + c * 4u));
  }
  for (var i = 0u; i < W_UNITS; i++) {
    let u = lid + i * WG_SIZE;
    if (u >= W_TOTAL) { break; } // f16/bf16 with a shallow tile: fewer units than threads
    if (W_NK) {
      let row = u / (TILE_K / UK); // n within the tile
      let c = u % (TILE_K / UK);
      stage_w_unit(i * W_SLOTS, w_span(n0 + row, k0 + c * UK));
    } else {
      let row = u / (TILE_N / UK); // k within the tile
      let c = u % (TILE_N / UK);
      stage_w_unit(i * W_SLOTS, w_span(n0 + c * UK, k0 + row));
    }
  }
}
