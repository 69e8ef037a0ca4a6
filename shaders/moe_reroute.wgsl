// Capacity with re-routing (the "reroute" overflow policy), between moe_router and moe_plan.
// Capacity is applied to the router's own choices in token order: an expert keeps the first `capacity` tokens that
// chose it; it is full when more chose it. Each overflowing assignment (token order, then slot order) moves to the
// token's best-scoring expert by the router's selection score c (ties to the lower index) among experts that are
// not full and that the token neither chose nor was already given; with none left it is dropped. One round:
// re-routed assignments are not limited again, so an expert that was not full can end above capacity
// (4 experts, capacity 3, first choices 7/2/1/0 → 3/2/1/4). A re-routed slot keeps its gate weight.
// Because "full" depends only on the first choices, tokens are independent: thread per token, no sequential walk.
//   1. per expert (thread e): demand = set bits of its membership mask, cutoff = token of its capacity-th member
//   2. per token: slots whose token is at or past its expert's cutoff are moved (mask bit moved, counts updated)
// moe_plan then lists every assignment (it skips its own capacity cut when this kernel ran).
// #include "lib/moe_params"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read_write> records: array<u32>;      // [max_tokens, REC]
@group(0) @binding(2) var<storage, read> probs: array<f32>;              // [2, max_tokens, experts]; c at choice_offset
@group(0) @binding(3) var<storage, read_write> plan: array<atomic<u32>>; // masks, drop / re-route counts

const WG: u32 = 256u;

var<workgroup> demand: array<u32, 256>; // tokens that chose each expert
var<workgroup> cutoff: array<u32, 256>; // first token past the expert's capacity (NONE: never full)

// Whether token t already chose or was given expert e.
fn token_has(t: u32, e: u32) -> bool {
  for (var s = 0u; s < P.top_k; s++) {
    if (records[t * REC + s] == e || records[t * REC + REC_ASSIGNED + s] == e) { return true; }
  }
  return false;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32) {
  let E = P.experts;
  let cap = P.capacity;
  let words = (P.tokens + 31u) / 32u;
  if (li < E) {
    atomicStore(&plan[P.off_drop_step + li], 0u);
    atomicStore(&plan[P.off_reroute_step + li], 0u);
    var run = 0u;
    var cut = NONE;
    for (var w = 0u; w < words; w++) {
      var bits = atomicLoad(&plan[li * P.mask_words + w]);
      let n = countOneBits(bits);
      if (cut == NONE && run + n > cap) {
        // the (cap - run)-th set bit of this word (0-based) is the first member past capacity
        for (var skip = cap - run; skip > 0u; skip--) { bits &= bits - 1u; }
        cut = w * 32u + firstTrailingBit(bits);
      }
      run += n;
    }
    demand[li] = run;
    cutoff[li] = cut;
  }
  workgroupBarrier();

  for (var t = li; t < P.tokens; t += WG) {
    let word = t / 32u;
    let bit = 1u << (t % 32u);
    for (var s = 0u; s < P.top_k; s++) {
      let e = records[t * REC + REC_ASSIGNED + s];
      if (e == NONE || cutoff[e] == NONE || t < cutoff[e]) { continue; }
      var best = NONE;
      var bv = 0.0;
      for (var c = 0u; c < E; c++) {
        if (demand[c] >= cap || token_has(t, c)) { continue; }
        let v = probs[P.choice_offset + t * E + c];
        if (v <= -1e29) { continue; } // -1e30 marks an ablated expert
        if (best == NONE || v > bv) { best = c; bv = v; }
      }
      atomicAnd(&plan[e * P.mask_words + word], ~bit);
      records[t * REC + REC_ASSIGNED + s] = best;
      if (best == NONE) {
        atomicAdd(&plan[P.off_drop_step + e], 1u);
      } else {
        atomicOr(&plan[best * P.mask_words + word], bit);
        atomicAdd(&plan[P.off_reroute_step + best], 1u);
      }
    }
  }
}
