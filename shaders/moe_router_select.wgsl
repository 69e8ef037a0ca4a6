// MoE router selection for a few tokens (decode), after moe_router_logits: one workgroup per token, one thread per
// expert (threads stride over E when E > SEL_WG). The same semantics as moe_router's one-thread selection (see the
// formulas there), made parallel:
//   z_e, the max m and Σ exp(z − m) (lse = m + log Σ): trees over the experts that exist, two barriers each;
//   p_e, c_e per thread; non-finite flags gathered with a workgroup atomic (a flagged token runs the same steps);
//   group-limited top-k: thread g < n_group scores its group (max, or sum of its top-2), then each expert keeps its
//   score when fewer than topk_group groups rank above its own (score descending, ties to the lower group index);
//   top-k: expert e takes slot r = the number of experts that rank above it (c descending, ties to the lower index;
//   ablated experts neither rank nor count), when r < k, which is exactly the order of moe_router's repeated arg-max.
// Writes the probabilities, the choice scores (over the logits moe_router_logits left there), the token's record
// (REC_SGATE only without a gated shared expert: moe_router_logits wrote the gate logit) and:
//   main: the token's membership bits (moe_plan follows);
//   main_plan (T = 1, no re-routing): moe_plan's work for the one token in the same workgroup instead, which saves
//     moe_plan's dispatch and its re-reading of the records. At one token it reduces to: expert e is a member (count
//     1) when a slot chose it; capacity never cuts (kept = count: a positive capacity is ≥ 1, and nothing was
//     re-routed); its one row and its one tile start at the number of chosen experts below e; prefix and starts 0,
//     the mask copy for moe_scatter is the membership bit. Thread e keeps its probability, slot and gate weight in
//     registers, reads the statistics it adds to before the selection (their latency overlaps it) and only stores
//     after: nothing is read back through memory, so no storage barrier.
// Latency (a decode step waits on this one workgroup): two global round trips (the uniform, then the ablation mask,
// the logits and main_plan's old statistics together) and 6 workgroup barriers (2 per tree, the scores, the ranks;
// 2 more for group-limited top-k); no loop over experts in one thread.
// #include "lib/moe_params"
// #include "lib/moe_router_common"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read> aux: array<f32>;                // [2, experts] router bias, correction bias
@group(0) @binding(2) var<storage, read> ablated: array<u32>;            // [num_layers, experts] 1 = ablated
@group(0) @binding(3) var<storage, read_write> records: array<u32>;      // [max_tokens, REC] per-token record
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;        // [2, max_tokens, experts] p, then c (logits in)
// The plan buffer: main sets membership bits ([experts, mask_words] at offset 0) atomically; main_plan, one workgroup,
// writes it as plain words (layout.ts), and binds the statistics too.
@group(0) @binding(5) var<storage, read_write> masks: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> plan: array<u32>;
@group(0) @binding(6) var<storage, read_write> counts: array<u32>;         // main_plan: [layers, experts] …
@group(0) @binding(7) var<storage, read_write> step_counts: array<u32>;    // [layers, experts]
@group(0) @binding(8) var<storage, read_write> prob_mass: array<f32>;      // [layers, experts]
@group(0) @binding(9) var<storage, read_write> gate_sum: array<f32>;       // [layers, experts]
// bindings 10, 11: dropped and rerouted [layers, experts], in the layout as for moe_plan; unchanged at one token
@group(0) @binding(12) var<storage, read_write> z_loss_sum: array<f32>;    // [layers]

// Threads: a power of two in [TREE_G, 256] (each serves experts li, li + SEL_WG, …).
override SEL_WG: u32 = 256u;
// Experts per token (≤ 256) that a workgroup holds in shared memory.
const E_MAX: u32 = 256u;
// main_plan: the statistics sums (false: MoeLayerOptions.record off, as moe_plan's STATS).
override STATS: bool = true;

var<workgroup> zs: array<f32, E_MAX>;        // z, then p
var<workgroup> cs: array<f32, E_MAX>;        // selection score c (EXCLUDED when ablated)
var<workgroup> out_of: array<u32, E_MAX>;    // 1 = ablated in this layer
var<workgroup> red: array<f32, 2 * SEL_WG>;  // tree reductions: the max's partials, then the sum's (no barrier between)
var<workgroup> gscore: array<f32, 64>;       // group scores (n_group ≤ 64)
var<workgroup> slot_expert: array<u32, K_MAX>;
var<workgroup> flags_any: atomic<u32>;
var<workgroup> exists_any: atomic<u32>;

// The smallest power of two ≥ min(E, SEL_WG): the threads that hold values in a tree.
fn tree_span(E: u32) -> u32 {
  var span = 1u;
  while (span < min(E, SEL_WG)) { span <<= 1u; }
  return span;
}

// The trees' width folded in registers: TREE_G ≤ SEL_WG.
const TREE_G: u32 = 16u;

fn combine(a: f32, b: f32, is_max: bool) -> f32 {
  return select(a + b, max(a, b), is_max);
}

// The tree over red[base .. base + span) (max or sum), with the additions in the brackets of a level-by-level tree
// (for s = span/2 … 1: element i < s combines element i + s) but two barriers: the levels s ≥ TREE_G touch only
// elements ≡ i mod TREE_G, so thread i < TREE_G folds its class serially in place; then every thread folds the
// TREE_G results in registers (levels s < span only). Every thread gets the result; red[base …] is not read after,
// so no barrier follows. Called from uniform control flow.
fn reduce(li: u32, span: u32, base: u32, is_max: bool) -> f32 {
  workgroupBarrier();
  if (li < TREE_G) {
    for (var s = span / 2u; s >= TREE_G; s >>= 1u) {
      for (var j = li; j < s; j += TREE_G) { red[base + j] = combine(red[base + j], red[base + j + s], is_max); }
    }
  }
  workgroupBarrier();
  var v: array<f32, TREE_G>;
  for (var i = 0u; i < TREE_G; i++) { v[i] = red[base + i]; }
  for (var s = TREE_G / 2u; s > 0u; s >>= 1u) {
    if (s < span) {
      for (var i = 0u; i < s; i++) { v[i] = combine(v[i], v[i + s], is_max); }
    }
  }
  return v[0];
}

// The gate weight of a chosen expert of probability p; wsum: the chosen probabilities summed in slot order.
fn gate_weight(p: f32, wsum: f32) -> f32 {
  var ws = p;
  if (P.norm_topk != 0u && wsum > 0.0) { ws = ws / wsum; }
  return ws * P.scale;
}

// Expert li's part of the selection (meaningful when E ≤ SEL_WG): its probability as written, its slot (NONE when
// not chosen), its gate weight (0 when not chosen), and the token's recorded lse.
struct Chosen {
  prob: f32,
  slot: u32,
  weight: f32,
  lse: f32,
}

// Selects token t's experts; slot_expert holds them after (NONE in unused slots, and in all when flagged).
// Called from uniform control flow (barriers).
fn select_token(li: u32, t: u32) -> Chosen {
  let E = P.experts;
  let pos = P.position + t;
  let rec = t * REC;
  let choice_base = P.choice_offset + t * E;
  let span = tree_span(E);
  if (li < K_MAX) { slot_expert[li] = NONE; }

  // ---- z = (logit + bias + noise) / T; max over the experts that exist ----
  var m_part = EXCLUDED;
  for (var e = li; e < E; e += SEL_WG) {
    // both loads issued together (the logit is read whether or not it is used)
    let out = ablated[P.layer * E + e] != 0u;
    let logit = probs[choice_base + e];
    out_of[e] = select(0u, 1u, out);
    if (!out) {
      if (not_finite(logit)) { atomicOr(&flags_any, FLAG_LOGITS); }
      let z = what_if_z(logit, e, pos);
      zs[e] = z;
      m_part = max(m_part, z);
      atomicOr(&exists_any, 1u);
    }
  }
  red[li] = m_part;
  let m = reduce(li, span, 0u, true);

  var s_part = 0.0;
  for (var e = li; e < E; e += SEL_WG) {
    if (out_of[e] == 0u) { s_part += exp(zs[e] - m); }
  }
  red[SEL_WG + li] = s_part;
  let sum = reduce(li, span, SEL_WG, false);
  let lse = select(0.0, m + log(sum), atomicLoad(&exists_any) != 0u);

  // ---- probabilities and selection scores ----
  for (var e = li; e < E; e += SEL_WG) {
    var p = 0.0;
    var c = EXCLUDED;
    if (out_of[e] == 0u) {
      let z = zs[e];
      if (P.scoring == 0u) { p = exp(z - m) / sum; } else { p = 1.0 / (1.0 + exp(-z)); }
      c = p;
      if (P.has_corr != 0u) { c += aux[E + e]; }
      if (not_finite(p) || not_finite(c)) { atomicOr(&flags_any, FLAG_SCORES); }
    }
    zs[e] = p;
    cs[e] = c;
  }
  workgroupBarrier();
  // The same value in every thread, though not provably uniform: a flagged token (not routed in this layer: no
  // expert, zero probabilities and choice scores) takes the same barriers, with no rank and no slot.
  let flags = atomicLoad(&flags_any);
  let flagged = flags != 0u;
  let lse_rec = select(lse, 0.0, flagged);
  if (li == 0u) {
    records[rec + REC_FLAGS] = flags;
    records[rec + REC_LSE] = bitcast<u32>(lse_rec);
    if (P.shared_mode != 2u) { records[rec + REC_SGATE] = 0u; }
  }
  for (var e = li; e < E; e += SEL_WG) { probs[t * E + e] = select(zs[e], 0.0, flagged); }

  // ---- group-limited top-k: experts outside the best topk_group groups score 0.0 ----
  if (P.n_group > 1u) {
    let gsize = E / P.n_group;
    if (li < P.n_group) {
      var b1 = EXCLUDED;
      var b2 = EXCLUDED;
      for (var j = 0u; j < gsize; j++) {
        let c = cs[li * gsize + j];
        if (c > b1) { b2 = b1; b1 = c; } else if (c > b2) { b2 = c; }
      }
      gscore[li] = select(b1, b1 + b2, P.group_score == 1u);
    }
    workgroupBarrier();
    for (var e = li; e < E; e += SEL_WG) {
      let g = e / gsize;
      let v = gscore[g];
      var above = 0u;
      for (var h = 0u; h < P.n_group; h++) {
        let u = gscore[h];
        if (u > v || (u == v && h < g)) { above++; }
      }
      if (above >= P.topk_group && out_of[e] == 0u) { cs[e] = 0.0; }
    }
    workgroupBarrier(); // without groups, the barrier before the flags published cs
  }

  // ---- top-k: each expert's rank among the candidates ----
  var my_slot = NONE; // expert li's
  for (var e = li; e < E; e += SEL_WG) {
    probs[choice_base + e] = select(cs[e], 0.0, flagged);
    if (flagged || out_of[e] != 0u) { continue; }
    let c = cs[e];
    var above = 0u;
    for (var f = 0u; f < E; f++) {
      let d = cs[f];
      if (out_of[f] == 0u && (d > c || (d == c && f < e))) { above++; }
    }
    if (above < P.top_k) {
      slot_expert[above] = e;
      if (e == li) { my_slot = above; }
    }
  }
  workgroupBarrier();
  // every thread sums the chosen weights in slot order (one value, no further barrier); slots from k on hold NONE, so
  // the loop's bound can be the constant K_MAX (its loads can overlap)
  var wsum = 0.0;
  for (var s = 0u; s < K_MAX; s++) {
    let ce = slot_expert[s];
    if (ce != NONE) { wsum += zs[ce]; }
  }
  if (li < K_MAX) {
    let chosen = slot_expert[li];
    var ws = 0.0;
    if (chosen != NONE) { ws = gate_weight(zs[chosen], wsum); }
    records[rec + li] = chosen;
    records[rec + REC_WEIGHT + li] = bitcast<u32>(ws);
    records[rec + REC_ASSIGNED + li] = chosen;
    records[rec + REC_ROW + li] = NONE;
  }
  let p = select(0.0, zs[li], li < E && !flagged); // li < SEL_WG ≤ E_MAX
  return Chosen(p, my_slot, select(0.0, gate_weight(p, wsum), my_slot != NONE), lse_rec);
}

@compute @workgroup_size(SEL_WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  select_token(li, t);
  if (li < K_MAX) {
    let chosen = slot_expert[li];
    if (chosen != NONE) { atomicOr(&masks[chosen * P.mask_words + t / 32u], 1u << (t % 32u)); }
  }
}

// SEL_WG ≥ E here: thread e serves expert e in the plan part.
@compute @workgroup_size(SEL_WG)
fn main_plan(@builtin(local_invocation_index) li: u32) {
  let E = P.experts;
  let se = P.layer * E + li;
  // the old statistics, loaded before the selection so that their latency overlaps it
  var old_count = 0u;
  var old_mass = 0.0;
  var old_gate = 0.0;
  var old_z = 0.0;
  if (li < E) {
    old_count = counts[se];
    if (STATS) {
      old_mass = prob_mass[se];
      old_gate = gate_sum[se];
    }
  }
  if (STATS && li == 0u) { old_z = z_loss_sum[P.layer]; }
  let ch = select_token(li, 0u);
  if (li < E) {
    let member = select(0u, 1u, ch.slot != NONE);
    // the chosen experts (rows = tiles at one token) below li, and in all: K_MAX independent shared loads
    var below = 0u;
    var chosen = 0u;
    for (var s = 0u; s < K_MAX; s++) {
      let c = slot_expert[s];
      if (c != NONE) {
        chosen++;
        if (c < li) { below++; }
      }
    }
    plan[P.off_prefix + li] = 0u;
    plan[P.off_mask_copy + li] = member;
    plan[P.off_starts + li] = 0u;
    plan[P.off_offsets + li] = below;
    plan[P.off_kept + li] = member;
    if (member != 0u) {
      plan[P.off_tile_expert + below] = li;
      plan[P.off_tile_row + below] = below;
    }
    if (li == 0u) { plan[P.off_header] = chosen; }
    counts[se] = old_count + member;
    step_counts[se] = member;
    if (STATS) {
      var gate = 0.0;
      if (member != 0u) { gate += ch.weight; }
      prob_mass[se] = old_mass + ch.prob;
      gate_sum[se] = old_gate + gate;
      if (li == 0u) { z_loss_sum[P.layer] = old_z + ch.lse * ch.lse; }
    }
  }
}
