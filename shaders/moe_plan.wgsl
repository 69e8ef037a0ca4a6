// MoE dispatch plan: turns the router's choices into per-expert row counts and offsets, applies capacity, builds the
// tile list of the grouped expert matmuls, and updates the routing statistics. No CPU readback anywhere.
//
// Input: per expert e a membership bitmask over tokens (bit t set when token t is assigned to e), set by moe_router
// (and moved by moe_reroute). The stable rank of token t in e's list is
//   rank = popcount of e's mask bits below t = prefix[e, t / 32] − start[e] + popcount(mask[e, t / 32] & below(t)),
// so lists come out in token order (moe_scatter writes them) without sorting and without atomics.
//   1. prefix: exclusive scan of the per-word popcounts, per expert by its own thread (few words: this kernel runs
//      for T ≤ PLAN_SPLIT_TOKENS = 256, i.e. ≤ 8 words); the masks are copied for moe_scatter and cleared for the
//      next layer / step.
//   2. counts and capacity (drop policy): kept = min(count, capacity) — the first `capacity` tokens in token order
//      keep their slot (under the reroute policy moe_reroute has already moved or dropped the overflow, so
//      everything is kept); cutoff = the first token past capacity. One thread sums over the experts for each
//      expert's first row (offset) and first tile (cheaper than workgroup scans); tiles are tile_m rows.
//   3. statistics for layer l, summed in a fixed order (deterministic): counts += kept, stepCounts = kept,
//      dropped/rerouted, probMass += Σ_t p[t, e], gateSum += Σ gate weights of e's kept assignments,
//      zLossSum += Σ_t lse².
// STATS = false compiles step 3's probMass/gateSum/zLossSum sums out (bench-model's cost-of-the-record measurement;
// the count statistics of lib/moe_plan_common stay).
// One workgroup of PLAN_WG = 256 threads (experts ≤ 256 ≤ PLAN_WG): one dispatch, for decode and short steps.
// Longer steps (T > PLAN_SPLIT_TOKENS, src/engine/kernels/moe-plan.ts) use the two-pass plan instead:
// moe_plan_partials (one workgroup per 128 tokens) then moe_plan_finish, because here the statistics loops walk
// T / (PLAN_WG / E) tokens per thread one after another (32 at T = 1024, E = 8).
// #include "lib/moe_params"
// #include "lib/moe_plan_common"
// #include "lib/moe_token_stats"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read> records: array<u32>;           // [max_tokens, REC]
@group(0) @binding(2) var<storage, read> probs: array<f32>;             // [max_tokens, experts] probabilities (first half)
@group(0) @binding(3) var<storage, read_write> plan: array<u32>;        // plan buffer (layout.ts)
@group(0) @binding(4) var<storage, read_write> counts: array<u32>;      // [layers, experts]
@group(0) @binding(5) var<storage, read_write> step_counts: array<u32>; // [layers, experts]
@group(0) @binding(6) var<storage, read_write> prob_mass: array<f32>;   // [layers, experts]
@group(0) @binding(7) var<storage, read_write> gate_sum: array<f32>;    // [layers, experts]
@group(0) @binding(8) var<storage, read_write> dropped: array<u32>;     // [layers, experts]
@group(0) @binding(9) var<storage, read_write> rerouted: array<u32>;    // [layers, experts]
@group(0) @binding(10) var<storage, read_write> z_loss_sum: array<f32>; // [layers]

override PLAN_WG: u32 = 256u;
override STATS: bool = true;

var<workgroup> facc: array<f32, PLAN_WG>;
var<workgroup> facc2: array<f32, PLAN_WG>;
var<workgroup> facc3: array<f32, PLAN_WG>;

@compute @workgroup_size(PLAN_WG)
fn main(@builtin(local_invocation_index) li: u32) {
  let T = P.tokens;
  let E = P.experts;
  let words = (T + 31u) / 32u;            // mask words in use per expert

  // ---- 1. prefix over per-word popcounts (relative to each expert's start); copy and clear the masks ----
  // few words: each expert's thread walks its own words, no workgroup scan needed
  if (li < E) {
    var run = 0u;
    for (var w = 0u; w < words; w++) {
      let at = li * P.mask_words + w;
      let m = plan[at];
      plan[P.off_prefix + li * words + w] = run;
      plan[P.off_mask_copy + li * words + w] = m;
      plan[at] = 0u;
      run += countOneBits(m);
    }
    e_count[li] = run;
    plan[P.off_starts + li] = 0u;
  }
  storageBarrier();
  workgroupBarrier();

  let count_kept = plan_capacity_and_tiles(li, E, words);
  let count = count_kept.x;
  let kept = count_kept.y;
  if (!STATS) { return; }
  let se = P.layer * E;
  // probMass, gateSum (and zLossSum in expert 0's threads): G threads per expert sum a strided share of the
  // tokens, then thread e adds the shares in order.
  let g_per = PLAN_WG / E;
  let my_e = li % E;
  let my_g = li / E;
  var pacc = 0.0;
  var gacc = 0.0;
  var zacc = 0.0;
  if (my_g < g_per) {
    let cut = e_cutoff[my_e];
    for (var t = my_g; t < T; t += g_per) {
      let st = token_stats(t, my_e, cut);
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
    prob_mass[se + li] += ps;
    gate_sum[se + li] += gs;
    if (li == 0u) {
      var zs = 0.0;
      for (var g = 0u; g < g_per; g++) { zs += facc3[g * E]; }
      z_loss_sum[P.layer] += zs;
    }
  }
}
