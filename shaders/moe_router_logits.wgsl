// MoE router logits for a few tokens (decode): the first of the two small-T router kernels (moe_router_select
// follows; moe_router does both for long steps, one workgroup per RT tokens).
//
// Workgroup (g, t): token t, router rows e = g·EPW + r for r < EPW (row E is the shared-expert gate vector when
// shared_mode = 2). Row r's LANES threads stride over H: in 16-byte units when ALIGNED (4 f32 or 8 f16/bf16 weights),
// else element by element; then a shared-memory tree over the lanes (no subgroups).
//   logit_e = x[t]·W[e]ᵀ                                           → probs[choice_offset + t·E + e] (the choice-score
//                                                                    half, which moe_router_select reads and overwrites)
//   gate    = x[t]·g                                              → records[t, REC_SGATE]
// NORM (the layer's input RMSNorm folded in): x is the residual stream. Every row sums the squares of the same x
// elements it multiplies, so the one tree gives both:
//   logit_e = inv_rms · Σ_h x_h · norm_w_h · W[e, h],   inv_rms = 1 / sqrt(Σ_h x_h² / H + eps)
// and the token's workgroups write normed[t] = x · inv_rms · norm_w (what the expert kernels read), a share each.
// #include "lib/weights"
// #include "lib/moe_params"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;             // [tokens, hidden] input (NORM: residual stream)
@group(0) @binding(2) var<storage, read> w_router: array<vec4<u32>>;      // [experts, hidden] WEIGHT_DTYPE words
@group(0) @binding(3) var<storage, read> w_shared_gate: array<vec4<u32>>; // [hidden] WEIGHT_DTYPE words (shared_mode 2)
@group(0) @binding(4) var<storage, read_write> records: array<u32>;       // [max_tokens, REC] (REC_SGATE written)
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;         // [2, max_tokens, experts]: logits into the second half
@group(0) @binding(6) var<storage, read> norm_w: array<u32>;              // NORM: [hidden] RMSNorm weight, WEIGHT_DTYPE words
@group(0) @binding(7) var<storage, read_write> normed: array<f32>;        // NORM: [tokens, hidden] x · inv_rms · norm_w

// 16-byte loads: needs hidden % 4 == 0 (% 8 for 16-bit weights).
override ALIGNED: bool = false;
override NORM: bool = false;
// Router rows per workgroup (src/engine/kernels/moe-router.ts sizes the grid with the same value).
override EPW: u32 = 4u;
// Threads per row: a power of two.
override LANES: u32 = 64u;
override WG: u32 = EPW * LANES;

var<workgroup> dots: array<f32, WG>;  // [EPW, LANES] partial dot products
var<workgroup> sumsq: array<f32, WG>; // [EPW, LANES] partial sums of squares (NORM)

fn norm_weight(h: u32) -> f32 {
  return decode_weight(norm_w[weight_word(h)], h);
}

// Router row e's weights h .. h + 3, h a multiple of 4 (gate: the shared-expert gate vector's).
fn weights4(gate: bool, e: u32, h: u32) -> vec4<f32> {
  let i = e * P.hidden + h;
  if (WEIGHT_DTYPE == 0u) {
    var q: vec4<u32>;
    if (gate) { q = w_shared_gate[h >> 2u]; } else { q = w_router[i >> 2u]; }
    return bitcast<vec4<f32>>(q);
  }
  var q: vec4<u32>;
  if (gate) { q = w_shared_gate[h >> 3u]; } else { q = w_router[i >> 3u]; }
  // h is a multiple of 4: the low or high half of the 8-weight unit
  let lo = select(q.xy, q.zw, (h & 4u) != 0u);
  return vec4<f32>(decode_pair(lo.x), decode_pair(lo.y));
}

fn weight1(gate: bool, e: u32, h: u32) -> f32 {
  let i = select(e * P.hidden + h, h, gate);
  let wi = weight_word(i);
  var word: u32;
  if (gate) { word = w_shared_gate[wi >> 2u][wi & 3u]; } else { word = w_router[wi >> 2u][wi & 3u]; }
  return decode_weight(word, i);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t = wg.y;
  let H = P.hidden;
  let E = P.experts;
  let r = li / LANES;
  let lane = li % LANES;
  let e = wg.x * EPW + r;
  let rows = E + select(0u, 1u, P.shared_mode == 2u);
  let gate = e == E;
  let xrow = t * H;

  var d = 0.0;
  var ss = 0.0;
  if (e < rows) {
    if (ALIGNED) {
      for (var h = lane * 4u; h < H; h += LANES * 4u) {
        let a = x[(xrow + h) >> 2u];
        var xa = a;
        if (NORM) {
          ss += dot(a, a);
          xa = a * vec4<f32>(norm_weight(h), norm_weight(h + 1u), norm_weight(h + 2u), norm_weight(h + 3u));
        }
        d += dot(xa, weights4(gate, e, h));
      }
    } else {
      for (var h = lane; h < H; h += LANES) {
        let v = x[(xrow + h) >> 2u][(xrow + h) & 3u];
        var xv = v;
        if (NORM) {
          ss += v * v;
          xv = v * norm_weight(h);
        }
        d += xv * weight1(gate, e, h);
      }
    }
  }
  dots[li] = d;
  sumsq[li] = ss;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      dots[li] += dots[li + s];
      if (NORM) { sumsq[li] += sumsq[li + s]; }
    }
    workgroupBarrier();
  }
  var inv_rms = 1.0;
  if (NORM) { inv_rms = inverseSqrt(sumsq[r * LANES] / f32(H) + P.norm_eps); }
  if (lane == 0u && e < rows) {
    let logit = dots[li] * inv_rms;
    if (gate) {
      records[t * REC + REC_SGATE] = bitcast<u32>(logit);
    } else {
      probs[P.choice_offset + t * E + e] = logit;
    }
  }
  if (NORM) {
    // row 0's sum of squares covers every element of the token (the same bits in every workgroup); the token's
    // workgroups write a share of its normalised row each
    let inv0 = inverseSqrt(sumsq[0] / f32(H) + P.norm_eps);
    for (var h = wg.x * WG + li; h < H; h += groups.x * WG) {
      normed[xrow + h] = x[(xrow + h) >> 2u][(xrow + h) & 3u] * inv0 * norm_weight(h);
    }
  }
}
