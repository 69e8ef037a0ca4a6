// Rotary position embedding, in place, as Hugging Face Llama/Mixtral/Qwen/OLMoE/Granite apply it ("rotate_half"):
// for a head x of length d and pair i < d/2, with position p = start_pos + t and angle a = f32(p) · inv_freq[i]:
//   x'[i]       = x[i] · cos a − x[i + d/2] · sin a
//   x'[i + d/2] = x[i + d/2] · cos a + x[i] · sin a
// (cos and sin times `scaling`, transformers' attention_scaling, 1 for the default rope).
// inv_freq comes from the host, computed in float32 exactly as transformers does (src/model/rope.ts), and
// the angle is the same single f32 product transformers forms, so angles match it bit for bit.
// sin/cos are not WGSL's built-ins: WGSL promises only 2^-11 absolute error on [-π, π], and GPUs lose accuracy fast
// outside it, while angles here reach the position (thousands of radians). sincos() below reduces by π/2 in three
// parts (Cody–Waite) and evaluates minimax polynomials on [-π/4, π/4]: ~1e-7 absolute for angles up to ~6000
// (the reduction is exact there), degrading slowly beyond (~1e-6 at 50000).
// Pairs: "rotate_half" pairs element i with i + d/2; `interleaved` (DeepSeek's complex-number form) pairs 2i with
// 2i + 1. Either way the rotated pair stays where it was, so q·k is the same as transformers' (DeepSeek-V3 writes the
// interleaved result de-interleaved, a permutation applied to q and k alike).
// One thread per (token, head, pair), grid-stride; q heads then k heads. Heads sit head_stride elements apart (d when
// packed; DeepSeek's q rope part sits after the nope part of each head). q and k are separate read_write bindings
// (WebGPU forbids aliasing writable bindings): a fused qkv buffer is rotated through `q` alone with
// q_heads = heads + kv_heads, the k binding unused (k_heads = 0).
//
// Entry point `append` (its own bindings, below main): what a step does between the fused q/k/v projection and
// attention, in one dispatch. For token t at position p = start_pos + t of a qkv row [q heads | k heads | v heads]:
//   u = qkv head (+ its bias slice when has_bias)
//   q and k heads: u ← RMSNorm(u) · w (qk_norm 1: over the head, weight [d], Qwen3-MoE; qk_norm 2: over the whole
//                  q or k projection, weight [heads·d], OLMoE), then RoPE ("rotate_half", as main);
//                  q heads → q_out [T, heads·d], k heads → k_cache[p] [kv_heads, d]
//   v heads:       u → v_cache[p]
// One workgroup of APPEND_WG threads per (head slot, token): slots 0 … heads−1 are q heads, the next kv_heads are k
// heads (whose workgroup also appends the v head of the same index). A norm over the whole projection is summed by
// every workgroup of that projection from qkv (read-only here, so no workgroup sees another's output).
// #include "lib/weights"

struct Params {
  tokens: u32,    // T
  q_heads: u32,   // heads rotated in q
  k_heads: u32,   // heads rotated in k (0: none)
  half_dim: u32,  // d / 2: rotary pairs per head
  q_stride: u32,  // elements between tokens in q
  q_offset: u32,  // element offset of token 0, head 0 in q
  k_stride: u32,  // elements between tokens in k
  k_offset: u32,  // element offset of token 0, head 0 in k
  start_pos: u32, // position of token 0
  scaling: f32,   // multiplies cos and sin (transformers' attention_scaling)
  q_head_stride: u32, // elements between heads in q (d when packed)
  k_head_stride: u32, // elements between heads in k
  interleaved: u32,   // 1: pairs (2i, 2i + 1); 0: pairs (i, i + d/2)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> inv_freq: array<f32>; // [d / 2] f32
@group(0) @binding(2) var<storage, read_write> q: array<f32>;  // [T, q_stride]: head h at q_offset + t·q_stride + h·q_head_stride
@group(0) @binding(3) var<storage, read_write> k: array<f32>;  // [T, k_stride]: head h at k_offset + t·k_stride + h·k_head_stride

override WORKGROUP: u32 = 256u;

// (sin x, cos x) for finite f32 x.
fn sincos(x: f32) -> vec2<f32> {
  let j = round(x * 0.636619772367581343); // nearest multiple of π/2
  // π/2 = P1 + P2 + P3; P1 has 8 significant bits and P2 12, so j·P1 and j·P2 are exact for |j| < 2^16 and 2^12.
  let r = ((x - j * 1.5703125) - j * 4.837512969970703125e-4) - j * 7.549789954891882e-8;
  let z = r * r;
  // Cephes sinf/cosf minimax coefficients on [-π/4, π/4].
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  switch (i32(j) & 3) {
    case 0: { return vec2<f32>(s, c); }
    case 1: { return vec2<f32>(c, -s); }
    case 2: { return vec2<f32>(-s, -c); }
    default: { return vec2<f32>(-c, s); }
  }
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let heads = params.q_heads + params.k_heads;
  let half = params.half_dim;
  let count = params.tokens * heads * half;
  for (var n = gid.x; n < count; n += groups.x * WORKGROUP) {
    let i = n % half;
    let th = n / half;
    let h = th % heads;
    let t = th / heads;
    let angle = f32(params.start_pos + t) * inv_freq[i];
    let sc = sincos(angle) * params.scaling;
    // Offsets of the pair's two elements within the head.
    let first = select(i, 2u * i, params.interleaved == 1u);
    let gap = select(half, 1u, params.interleaved == 1u);
    if (h < params.q_heads) {
      let a = params.q_offset + t * params.q_stride + h * params.q_head_stride + first;
      let x1 = q[a];
      let x2 = q[a + gap];
      q[a] = x1 * sc.y - x2 * sc.x;
      q[a + gap] = x2 * sc.y + x1 * sc.x;
    } else {
      let a = params.k_offset + t * params.k_stride + (h - params.q_heads) * params.k_head_stride + first;
      let x1 = k[a];
      let x2 = k[a + gap];
      k[a] = x1 * sc.y - x2 * sc.x;
      k[a + gap] = x2 * sc.y + x1 * sc.x;
    }
  }
}

struct AppendParams {
  tokens: u32,     // T
  heads: u32,      // q heads
  kv_heads: u32,   // k (and v) heads
  head_dim: u32,   // d (even, ≤ MAX_HEAD_DIM)
  qkv_stride: u32, // elements between tokens in qkv (heads·d + 2·kv_heads·d)
  start_pos: u32,  // position of token 0 (the cache row it is appended at)
  scaling: f32,    // multiplies cos and sin (transformers' attention_scaling)
  eps: f32,        // q/k RMSNorm epsilon
  qk_norm: u32,    // 0 none, 1 per head (weight [d] for q then [d] for k), 2 per projection ([heads·d] then [kv_heads·d])
  has_bias: u32,   // 1: add bias [heads·d + 2·kv_heads·d] (q, k, v biases back to back) before the norm
}

@group(0) @binding(0) var<uniform> ap: AppendParams;
// binding 1: inv_freq, as main
@group(0) @binding(2) var<storage, read> qkv: array<f32>;              // [T, qkv_stride] projections, before bias
@group(0) @binding(3) var<storage, read> bias: array<u32>;             // [qkv_stride] WEIGHT_DTYPE words (has_bias)
@group(0) @binding(4) var<storage, read> norm_w: array<u32>;           // q then k norm weights, WEIGHT_DTYPE words
@group(0) @binding(5) var<storage, read_write> q_out: array<f32>;      // [T, heads·d] rotated queries
@group(0) @binding(6) var<storage, read_write> k_cache: array<f32>;    // [max_seq, kv_heads, d]
@group(0) @binding(7) var<storage, read_write> v_cache: array<f32>;    // [max_seq, kv_heads, d]

override APPEND_WG: u32 = 64u;       // threads per (head, token); a power of two
override MAX_HEAD_DIM: u32 = 256u;
var<workgroup> head: array<f32, MAX_HEAD_DIM>; // the head being normed and rotated
var<workgroup> red: array<f32, APPEND_WG>;

fn weight_at(buf_is_bias: bool, i: u32) -> f32 {
  if (buf_is_bias) { return decode_weight(bias[weight_word(i)], i); }
  return decode_weight(norm_w[weight_word(i)], i);
}

// Element c of token t's qkv row, with its bias.
fn projected(t: u32, c: u32) -> f32 {
  var v = qkv[t * ap.qkv_stride + c];
  if (ap.has_bias == 1u) { v += weight_at(true, c); }
  return v;
}

// Σ over the workgroup of each thread's `v` (every thread gets the sum).
fn workgroup_sum(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = APPEND_WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(APPEND_WG)
fn append(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let slot = wg.x;
  let t = wg.y;
  let d = ap.head_dim;
  let is_q = slot < ap.heads;
  let h = select(slot - ap.heads, slot, is_q);
  // The projection this head belongs to: its first column in the row and its width.
  let proj0 = select(ap.heads * d, 0u, is_q);
  let proj_width = select(ap.kv_heads * d, ap.heads * d, is_q);
  let c0 = proj0 + h * d;
  let pos = ap.start_pos + t;

  // v: appended as projected (+ bias).
  if (!is_q) {
    let v0 = (ap.heads + ap.kv_heads) * d + h * d;
    for (var i = li; i < d; i += APPEND_WG) {
      v_cache[(pos * ap.kv_heads + h) * d + i] = projected(t, v0 + i);
    }
  }

  var ss = 0.0;
  for (var i = li; i < d; i += APPEND_WG) {
    let v = projected(t, c0 + i);
    head[i] = v;
    ss += v * v;
  }
  if (ap.qk_norm == 2u) {
    // The whole projection's sum of squares, this head's part included again from qkv.
    ss = 0.0;
    for (var c = li; c < proj_width; c += APPEND_WG) {
      let v = projected(t, proj0 + c);
      ss += v * v;
    }
  }
  if (ap.qk_norm != 0u) { // uniform: the sum's barriers are skipped as a whole without q/k norms
    let total = workgroup_sum(li, ss);
    let n = select(proj_width, d, ap.qk_norm == 1u);
    let inv = inverseSqrt(total / f32(n) + ap.eps);
    // Weights: q's then k's, [d] each (per head) or [heads·d] then [kv_heads·d] (per projection).
    let w0 = select(select(ap.heads * d, d, ap.qk_norm == 1u), 0u, is_q);
    let wh = select(h * d, 0u, ap.qk_norm == 1u);
    for (var i = li; i < d; i += APPEND_WG) {
      head[i] = head[i] * inv * weight_at(false, w0 + wh + i);
    }
  }
  workgroupBarrier();

  let half = d / 2u;
  for (var i = li; i < half; i += APPEND_WG) {
    let sc = sincos(f32(pos) * inv_freq[i]) * ap.scaling;
    let x1 = head[i];
    let x2 = head[i + half];
    let r1 = x1 * sc.y - x2 * sc.x;
    let r2 = x2 * sc.y + x1 * sc.x;
    if (is_q) {
      let o = t * ap.heads * d + h * d + i;
      q_out[o] = r1;
      q_out[o + half] = r2;
    } else {
      let o = (pos * ap.kv_heads + h) * d + i;
      k_cache[o] = r1;
      k_cache[o + half] = r2;
    }
  }
}
