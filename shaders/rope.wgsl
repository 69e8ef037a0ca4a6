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
