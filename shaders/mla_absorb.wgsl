// Multi-head latent attention (DeepSeek-V2/V3): the per-head products with kv_b_proj that let attention run on the
// compressed cache ("absorbed" form). kv_b_proj W: [heads·(nope + v), R] maps a latent c (R = kv_lora_rank) to each
// head's key part k_nope_h = W_k,h · c (rows h·(nope + v) + j, j < nope) and value v_h = W_v,h · c (rows
// h·(nope + v) + nope + i, i < v). Then q_nope_h · k_nope_h = (W_k,hᵀ q_nope_h) · c and Σ_s p_s v_h(s) = W_v,h Σ_s p_s c_s,
// so no per-head K or V is ever formed:
//
// absorb_q:  q_lat[t, h, c] = Σ_{j < nope} q[t, h, j] · W[h·(nope + v) + j, c]          (c < R)
//            one thread per output, grid-stride; threads of a warp read adjacent c of one weight row (coalesced).
// expand_v:  out[t, h·v + i] = Σ_{c < R} ctx[t, h, c] · W[h·(nope + v) + nope + i, c]     (i < v)
//            one thread per output, grid-stride; each walks one weight row.
// Accumulation in f32 in index order; weights decoded from WEIGHT_DTYPE words in registers.
// #include "lib/weights"

struct Params {
  tokens: u32,        // T
  heads: u32,         // query heads
  rank: u32,          // R = kv_lora_rank
  nope: u32,          // qk_nope_head_dim
  v_dim: u32,         // v_head_dim
  q_stride: u32,      // absorb_q: elements between tokens in q (heads·(nope + rope))
  q_head_stride: u32, // absorb_q: elements between heads in q (nope + rope); a head's nope part comes first
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // absorb_q: q [T, q_stride]; expand_v: ctx [T, heads, R]
@group(0) @binding(2) var<storage, read> w: array<u32>;        // kv_b_proj [heads·(nope + v), R] in WEIGHT_DTYPE words
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // absorb_q: q_lat [T, heads, R]; expand_v: [T, heads·v]

override WORKGROUP: u32 = 256u;

fn weight(e: u32) -> f32 {
  return decode_weight(w[weight_word(e)], e);
}

@compute @workgroup_size(WORKGROUP)
fn absorb_q(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let r = params.rank;
  let count = params.tokens * params.heads * r;
  let row_stride = params.nope + params.v_dim;
  for (var n = gid.x; n < count; n += groups.x * WORKGROUP) {
    let c = n % r;
    let th = n / r;
    let h = th % params.heads;
    let t = th / params.heads;
    let qb = t * params.q_stride + h * params.q_head_stride;
    let wb = h * row_stride * r + c;
    var acc = 0.0;
    for (var j = 0u; j < params.nope; j++) {
      acc += x[qb + j] * weight(wb + j * r);
    }
    y[n] = acc;
  }
}

@compute @workgroup_size(WORKGROUP)
fn expand_v(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let r = params.rank;
  let v = params.v_dim;
  let count = params.tokens * params.heads * v;
  let row_stride = params.nope + v;
  for (var n = gid.x; n < count; n += groups.x * WORKGROUP) {
    let i = n % v;
    let th = n / v; // t · heads + h
    let h = th % params.heads;
    let xb = th * r;
    let wb = (h * row_stride + params.nope + i) * r;
    var acc = 0.0;
    for (var c = 0u; c < r; c++) {
      acc += x[xb + c] * weight(wb + c);
    }
    y[n] = acc;
  }
}
