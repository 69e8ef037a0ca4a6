// MoE dispatch plan, parallel first pass (T > PLAN_SPLIT_TOKENS; moe_plan_finish completes it). One workgroup per
// block of BLOCK_WORDS mask words (BLOCK_WORDS · 32 tokens), so the work over the T tokens is spread over
// ceil(T / (32 · BLOCK_WORDS)) workgroups instead of the serial loops of the one-workgroup moe_plan.
// Workgroup b, with nb = the step's block count and the partials region at P.off_partials (layout.ts):
//   masks: each expert's thread copies its BLOCK_WORDS words to the mask copy, clears them for the next layer / step,
//     writes their exclusive popcount prefix relative to the block (moe_plan_finish adds the block's start) and the
//     block total to counts[e, b]                                           (region 0: [experts, nb] u32)
//   statistics partials over the block's tokens, each summed in a fixed order (deterministic, no float atomics):
//     prob[e, b] = Σ_t p[t, e]                                              (region 1: [experts, nb] f32 bits)
//     gate[e, b] = Σ gate weights of the block's assignments to e (capacity not yet applied: moe_plan_finish
//                  re-sums the one block that holds an expert's capacity cut-off)   (region 2: [experts, nb])
//     z[b]       = Σ_t lse²                                                  (region 3: [nb])
//   G = 256 / E threads per expert take a strided share of the block's tokens, then thread e adds the shares in order.
// Bindings: the same layout as moe_plan (one bind group serves all three plan pipelines); only 0–3 are used here.
// #include "lib/moe_params"
// #include "lib/moe_token_stats"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read> records: array<u32>;    // [max_tokens, REC]
@group(0) @binding(2) var<storage, read> probs: array<f32>;      // [max_tokens, experts] probabilities (first half)
@group(0) @binding(3) var<storage, read_write> plan: array<u32>; // plan buffer (layout.ts)

// Mask words per workgroup (PLAN_BLOCK_WORDS in layout.ts; the host sets it).
override BLOCK_WORDS: u32 = 4u;
const WG: u32 = 256u;

var<workgroup> facc: array<f32, WG>;
var<workgroup> facc2: array<f32, WG>;
var<workgroup> facc3: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let T = P.tokens;
  let E = P.experts;
  let words = (T + 31u) / 32u;
  let nb = (words + BLOCK_WORDS - 1u) / BLOCK_WORDS;
  let b = wg.x;
  let w0 = b * BLOCK_WORDS;
  let op = P.off_partials;

  // ---- masks: copy, clear, in-block prefix, block total ----
  for (var e = li; e < E; e += WG) {
    var run = 0u;
    for (var j = 0u; j < BLOCK_WORDS; j++) {
      let w = w0 + j;
      if (w < words) {
        let at = e * P.mask_words + w;
        let m = plan[at];
        plan[P.off_mask_copy + e * words + w] = m;
        plan[P.off_prefix + e * words + w] = run;
        plan[at] = 0u;
        run += countOneBits(m);
      }
    }
    plan[op + e * nb + b] = run;
  }

  // ---- statistics partials of the block's tokens ----
  let t0 = w0 * 32u;
  let t1 = min(T, t0 + BLOCK_WORDS * 32u);
  let g_per = WG / E;
  let my_e = li % E;
  let my_g = li / E;
  var pacc = 0.0;
  var gacc = 0.0;
  var zacc = 0.0;
  if (my_g < g_per) {
    for (var t = t0 + my_g; t < t1; t += g_per) {
      let st = token_stats(t, my_e, NONE); // capacity is applied later, by moe_plan_finish
      pacc += st.x;
      gacc += st.y;
      zacc += st.z;
    }
  }
  facc[li] = pacc;
  facc2[li] = gacc;
  facc3[li] = zacc;
  workgroupBarrier();
  if (li < E) {
    var ps = 0.0;
    var gs = 0.0;
    for (var g = 0u; g < g_per; g++) {
      ps += facc[g * E + li];
      gs += facc2[g * E + li];
    }
    plan[op + E * nb + li * nb + b] = bitcast<u32>(ps);
    plan[op + 2u * E * nb + li * nb + b] = bitcast<u32>(gs);
    if (li == 0u) {
      var zs = 0.0;
      for (var g = 0u; g < g_per; g++) { zs += facc3[g * E]; }
      plan[op + 3u * E * nb + b] = bitcast<u32>(zs);
    }
  }
}
