// MoE router: scores every expert for each token and picks its top-k, all on the GPU.
//
// Per token t (absolute position p = position + t), layer l:
//   logit_e  = x[t]·W[e]ᵀ (+ bias_e)                                  W: [E, H] in WEIGHT_DTYPE
//   z_e      = (logit_e + noise_std · n(seed, l, p, e)) · inv_temp    what-if noise (≈ N(0, 1)) and temperature
//   ablated experts are removed before scoring: they take no softmax mass and are never chosen
//   p_e      = softmax(z)_e                         (scoring 0: Mixtral, Qwen, OLMoE, Granite, DeepSeek-V2)
//            = sigmoid(z_e)                         (scoring 1: DeepSeek-V3)
//   c_e      = p_e (+ correction bias_e)            selection score; the bias never reaches the weights
//   group-limited top-k (n_group > 1): group score = max (group_score 0) or sum of the top-2 (group_score 1) of c
//            over the group; the best topk_group groups are kept; other experts' c becomes 0.0 (as transformers'
//            masked_fill), ablated experts stay excluded
//   top-k over c, ties to the lower expert index; weights w_s = p_chosen (renormalised to sum 1 if norm_topk) · scale
// Also: lse = logsumexp(z) over the experts that exist (router z-loss), the shared-expert gate logit x·g, and the
// token's bit in each chosen expert's membership mask (the plan kernel ranks tokens from those masks).
// NORM (the layer's input RMSNorm folded in): x is the residual stream; each workgroup first sums the squares of its
// tokens' rows, writes x · inv_rms · norm_w to `normed` (what the expert kernels read) and uses the same values,
// formed again in registers, for the logits.
// Numerics: a NaN or ±Inf logit or score sets the token's FLAG_* bits and the token is not routed in this layer (no
// expert chosen or counted; probabilities and lse written as 0), so bad numbers never show as routing.
//
// Tiling: one workgroup of ROWS × LANES threads (256; 64 on a software adapter, LANES = 8) handles RT tokens. Logits: each pass covers ROWS experts,
// LANES threads stride over H for every one of the RT tokens (W read once per pass; 16-byte loads, two in flight,
// when ALIGNED), then a shared-memory tree sum.
// Selection: one thread per token walks the E ≤ 256 scores (cheap next to the H-long dot products).
// #include "lib/weights"
// #include "lib/moe_params"
// #include "lib/moe_router_common"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;            // [tokens, hidden] post-norm input
@group(0) @binding(2) var<storage, read> w_router: array<vec4<u32>>;     // [experts, hidden] WEIGHT_DTYPE words
@group(0) @binding(3) var<storage, read> w_shared_gate: array<vec4<u32>>; // [hidden] WEIGHT_DTYPE words (shared_mode 2)
@group(0) @binding(4) var<storage, read> aux: array<f32>;                // [2, experts] router bias, correction bias
@group(0) @binding(5) var<storage, read> ablated: array<u32>;            // [num_layers, experts] 1 = ablated
@group(0) @binding(6) var<storage, read_write> records: array<u32>;      // [max_tokens, REC] per-token record
@group(0) @binding(7) var<storage, read_write> probs: array<f32>;        // [2, max_tokens, experts] p, then c
@group(0) @binding(8) var<storage, read_write> plan: array<atomic<u32>>; // masks: [experts, mask_words] at offset 0
@group(0) @binding(9) var<storage, read> norm_w: array<u32>;             // NORM: [hidden] RMSNorm weight, WEIGHT_DTYPE words
@group(0) @binding(10) var<storage, read_write> normed: array<f32>;      // NORM: [tokens, hidden] x · inv_rms · norm_w

// 16-byte loads (4 f32 or 8 f16/bf16 weights): needs hidden % 4 == 0 (% 8 for 16-bit weights).
override ALIGNED: bool = false;
override UK: u32 = select(8u, 4u, WEIGHT_DTYPE == 0u);
override NORM: bool = false;
override LANES: u32 = 32u;             // threads per expert row: a power of two ≤ 32
const ROWS: u32 = 8u;
override WG: u32 = ROWS * LANES;
// Tokens per workgroup (sizes a register array, so a const rather than an override).
const RT: u32 = 4u;
// Score slots per token: up to 256 experts + the shared-expert gate.
const SLOTS: u32 = 257u;

var<workgroup> partial: array<f32, 1024>;          // [ROWS, LANES, RT] (LANES ≤ 32)
var<workgroup> scores: array<f32, 1028>;           // [RT, SLOTS]

var<private> acc: array<f32, RT>;
var<workgroup> inv_rms: array<f32, RT>;            // NORM: 1 / rms of each of the workgroup's tokens

fn norm_weight(h: u32) -> f32 {
  return decode_weight(norm_w[weight_word(h)], h);
}

// The 16-byte unit of x at vec4 index xi (token slot i, element h): as bound, or (NORM) normalised.
fn x_unit(xi: u32, i: u32, h: u32) -> vec4<f32> {
  if (!NORM) { return x[xi]; }
  return x[xi] * inv_rms[i] * vec4<f32>(norm_weight(h), norm_weight(h + 1u), norm_weight(h + 2u), norm_weight(h + 3u));
}

// Element e = (t0 + i)·H + h of x: as bound, or (NORM) normalised.
fn x_elem(e: u32, i: u32, h: u32) -> f32 {
  let v = x[e >> 2u][e & 3u];
  if (!NORM) { return v; }
  return v * inv_rms[i] * norm_weight(h);
}

// NORM: inv_rms of the workgroup's ntok tokens from t0, and their normalised rows written to `normed`.
fn normalise(li: u32, t0: u32, ntok: u32) {
  let H = P.hidden;
  // ntok is the same for the whole workgroup: a decode step's one token pays for one tree, not RT.
  for (var i = 0u; i < ntok; i++) {
    var ss = 0.0;
    for (var h = li; h < H; h += WG) {
      let e = (t0 + i) * H + h;
      let v = x[e >> 2u][e & 3u];
      ss += v * v;
    }
    partial[li] = ss;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (li < s) { partial[li] += partial[li + s]; }
      workgroupBarrier();
    }
    if (li == 0u) { inv_rms[i] = inverseSqrt(partial[0] / f32(H) + P.norm_eps); }
    workgroupBarrier();
  }
  for (var i = 0u; i < ntok; i++) {
    for (var h = li; h < H; h += WG) {
      let e = (t0 + i) * H + h;
      normed[e] = x_elem(e, i, h);
    }
  }
}

// The UK weights of the 16-byte unit at element e of the router (or, for `gate`, the shared-expert gate vector).
fn w_unit(gate: bool, e: u32) -> array<f32, 8> {
  var q: vec4<u32>;
  let i = select(e >> 3u, e >> 2u, WEIGHT_DTYPE == 0u);
  if (gate) { q = w_shared_gate[i]; } else { q = w_router[i]; }
  var v: array<f32, 8>;
  if (WEIGHT_DTYPE == 0u) {
    v[0] = bitcast<f32>(q.x); v[1] = bitcast<f32>(q.y); v[2] = bitcast<f32>(q.z); v[3] = bitcast<f32>(q.w);
  } else {
    let p0 = decode_pair(q.x); let p1 = decode_pair(q.y); let p2 = decode_pair(q.z); let p3 = decode_pair(q.w);
    v[0] = p0.x; v[1] = p0.y; v[2] = p1.x; v[3] = p1.y; v[4] = p2.x; v[5] = p2.y; v[6] = p3.x; v[7] = p3.y;
  }
  return v;
}

// acc[i] += x[t0 + i, h .. h + UK) · wv for the workgroup's tokens.
fn dot_units(wv: array<f32, 8>, t0: u32, h: u32, ntok: u32) {
  for (var i = 0u; i < RT; i++) {
    if (i < ntok) {
      let xi = ((t0 + i) * P.hidden + h) >> 2u;
      let a = x_unit(xi, i, h);
      var s = a.x * wv[0] + a.y * wv[1] + a.z * wv[2] + a.w * wv[3];
      if (UK == 8u) {
        let b = x_unit(xi + 1u, i, h + 4u);
        s += b.x * wv[4] + b.y * wv[5] + b.z * wv[6] + b.w * wv[7];
      }
      acc[i] += s;
    }
  }
}

fn is_ablated(e: u32) -> bool {
  return ablated[P.layer * P.experts + e] != 0u;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t0 = wg.x * RT;
  let H = P.hidden;
  let E = P.experts;
  let row = li / LANES;
  let lane = li % LANES;
  let extra = select(0u, 1u, P.shared_mode == 2u);
  let passes = (E + extra + ROWS - 1u) / ROWS;

  let ntok = min(RT, P.tokens - t0);
  if (NORM) { normalise(li, t0, ntok); }

  // ---- logits: x·Wᵀ for every expert (and the shared-expert gate as slot E) ----
  for (var p = 0u; p < passes; p++) {
    let e = p * ROWS + row;
    acc = array<f32, RT>();
    if (e < E + extra) {
      let gate = e == E;
      let wbase = select(e * H, 0u, gate);
      if (ALIGNED) {
        // lanes stride over 16-byte units, two in flight
        let step = LANES * UK;
        var h = lane * UK;
        for (; h + step < H; h += 2u * step) {
          let w0 = w_unit(gate, wbase + h);
          let w1 = w_unit(gate, wbase + h + step);
          dot_units(w0, t0, h, ntok);
          dot_units(w1, t0, h + step, ntok);
        }
        if (h < H) { dot_units(w_unit(gate, wbase + h), t0, h, ntok); }
      } else {
        for (var h = lane; h < H; h += LANES) {
          let wi = weight_word(wbase + h);
          var word: u32;
          if (gate) { word = w_shared_gate[wi >> 2u][wi & 3u]; } else { word = w_router[wi >> 2u][wi & 3u]; }
          let wv = decode_weight(word, wbase + h);
          for (var i = 0u; i < RT; i++) {
            if (i < ntok) {
              acc[i] += x_elem((t0 + i) * H + h, i, h) * wv;
            }
          }
        }
      }
    }
    for (var i = 0u; i < RT; i++) { partial[(row * LANES + lane) * RT + i] = acc[i]; }
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
      if (lane < stride) {
        for (var i = 0u; i < RT; i++) {
          partial[(row * LANES + lane) * RT + i] += partial[(row * LANES + lane + stride) * RT + i];
        }
      }
      workgroupBarrier();
    }
    if (lane == 0u && e < E + extra) {
      for (var i = 0u; i < RT; i++) { scores[i * SLOTS + e] = partial[row * LANES * RT + i]; }
    }
    workgroupBarrier();
  }

  // ---- selection: one thread per token ----
  if (li >= RT) { return; }
  let t = t0 + li;
  if (t >= P.tokens) { return; }
  let base = li * SLOTS;
  let pos = P.position + t;
  let rec = t * REC;
  let choice_base = P.choice_offset + t * E;

  // z = (logit + bias + noise) / T; the max over existing experts
  var m = EXCLUDED;
  var exists = 0u;
  var flags = 0u;
  for (var e = 0u; e < E; e++) {
    if (is_ablated(e)) { continue; }
    let logit = scores[base + e];
    if (not_finite(logit)) { flags |= FLAG_LOGITS; }
    let z = what_if_z(logit, e, pos);
    scores[base + e] = z;
    m = max(m, z);
    exists++;
  }
  var sum = 0.0;
  for (var e = 0u; e < E; e++) {
    if (!is_ablated(e)) { sum += exp(scores[base + e] - m); }
  }
  let lse = select(0.0, m + log(sum), exists > 0u);

  // probabilities and selection scores (scores[] now holds c)
  for (var e = 0u; e < E; e++) {
    var p = 0.0;
    var c = EXCLUDED;
    if (!is_ablated(e)) {
      let z = scores[base + e];
      if (P.scoring == 0u) { p = exp(z - m) / sum; } else { p = 1.0 / (1.0 + exp(-z)); }
      c = p;
      if (P.has_corr != 0u) { c += aux[E + e]; }
      if (not_finite(p) || not_finite(c)) { flags |= FLAG_SCORES; }
    }
    probs[t * E + e] = p;
    scores[base + e] = c;
  }
  records[rec + REC_FLAGS] = flags;
  if (flags != 0u) {
    for (var e = 0u; e < E; e++) {
      probs[t * E + e] = 0.0;
      probs[choice_base + e] = 0.0;
    }
    for (var s = 0u; s < K_MAX; s++) {
      records[rec + s] = NONE;
      records[rec + REC_WEIGHT + s] = 0u;
      records[rec + REC_ASSIGNED + s] = NONE;
      records[rec + REC_ROW + s] = NONE;
    }
    records[rec + REC_LSE] = 0u;
    records[rec + REC_SGATE] = bitcast<u32>(select(0.0, scores[base + E], P.shared_mode == 2u));
    return;
  }

  // group-limited top-k: keep the best topk_group groups, the other experts' scores become 0.0
  if (P.n_group > 1u) {
    let gsize = E / P.n_group;
    var gscore = array<f32, 64>();
    for (var g = 0u; g < P.n_group; g++) {
      var b1 = EXCLUDED;
      var b2 = EXCLUDED;
      for (var j = 0u; j < gsize; j++) {
        let c = scores[base + g * gsize + j];
        if (c > b1) { b2 = b1; b1 = c; } else if (c > b2) { b2 = c; }
      }
      gscore[g] = select(b1, b1 + b2, P.group_score == 1u);
    }
    var keep = vec2<u32>(0u, 0u); // bitmask over ≤ 64 groups
    for (var j = 0u; j < P.topk_group; j++) {
      var best = NONE;
      var bv = 0.0;
      for (var g = 0u; g < P.n_group; g++) {
        let bit = 1u << (g % 32u);
        if ((keep[g / 32u] & bit) != 0u) { continue; }
        if (best == NONE || gscore[g] > bv) { best = g; bv = gscore[g]; }
      }
      if (best != NONE) { keep[best / 32u] |= 1u << (best % 32u); }
    }
    for (var e = 0u; e < E; e++) {
      let g = e / gsize;
      if ((keep[g / 32u] & (1u << (g % 32u))) == 0u && !is_ablated(e)) { scores[base + e] = 0.0; }
    }
  }
  for (var e = 0u; e < E; e++) { probs[choice_base + e] = scores[base + e]; }

  // top-k, ties to the lower index; ablated experts are never candidates
  var taken = array<u32, 8>();
  var chosen = array<u32, 8>();
  var w = array<f32, 8>();
  var wsum = 0.0;
  for (var s = 0u; s < K_MAX; s++) {
    chosen[s] = NONE;
    if (s >= P.top_k) { continue; }
    var best = NONE;
    var bv = 0.0;
    for (var e = 0u; e < E; e++) {
      if (is_ablated(e) || (taken[e / 32u] & (1u << (e % 32u))) != 0u) { continue; }
      let c = scores[base + e];
      if (best == NONE || c > bv) { best = e; bv = c; }
    }
    if (best == NONE) { continue; }
    taken[best / 32u] |= 1u << (best % 32u);
    chosen[s] = best;
    w[s] = probs[t * E + best];
    wsum += w[s];
  }
  let word = t / 32u;
  let bit = 1u << (t % 32u);
  for (var s = 0u; s < K_MAX; s++) {
    var ws = w[s];
    if (P.norm_topk != 0u && wsum > 0.0) { ws = ws / wsum; }
    ws *= P.scale;
    records[rec + s] = chosen[s];
    records[rec + REC_WEIGHT + s] = bitcast<u32>(select(ws, 0.0, chosen[s] == NONE));
    records[rec + REC_ASSIGNED + s] = chosen[s];
    records[rec + REC_ROW + s] = NONE;
    if (chosen[s] != NONE) { atomicOr(&plan[chosen[s] * P.mask_words + word], bit); }
  }
  records[rec + REC_LSE] = bitcast<u32>(lse);
  records[rec + REC_SGATE] = bitcast<u32>(select(0.0, scores[base + E], P.shared_mode == 2u));
}
