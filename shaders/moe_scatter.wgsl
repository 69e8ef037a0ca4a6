// MoE scatter: the stable scatter of the dispatch plan, one thread per (token, slot). For slot s < k of token t,
// assigned to expert e:
//   rank = prefix[e, t / 32] − start[e] + popcount(mask[e, t / 32] & below(t))    (moe_plan's prefix and mask copy)
//   rank < kept[e]: row = offset[e] + rank, row_key[row] = t·8 + s, records.row = row   (lists in token order)
//   else: dropped by capacity (records.assigned = NONE)
// Then records the token in the ring when its position is below the ring's capacity: chosen and assigned experts,
// gate weights (each slot's thread), logsumexp and non-finite flags (slot 0's), and the router's probability vector.
// Workgroups of SCATTER_WG / K_MAX tokens; the probability rows are copied by all threads of the workgroup together.
// (The slots of a token are independent, so a decode token's k rank look-ups run side by side, not one after another.)
// #include "lib/moe_params"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read_write> records: array<u32>;       // [max_tokens, REC]
@group(0) @binding(2) var<storage, read> probs: array<f32>;               // [max_tokens, experts] (first half)
@group(0) @binding(3) var<storage, read_write> plan: array<u32>;          // plan buffer (layout.ts)
@group(0) @binding(4) var<storage, read_write> ring_chosen: array<u32>;   // [ring, layers, K_MAX]
@group(0) @binding(5) var<storage, read_write> ring_assigned: array<u32>; // [ring, layers, K_MAX]
@group(0) @binding(6) var<storage, read_write> ring_weights: array<f32>;  // [ring, layers, K_MAX]
@group(0) @binding(7) var<storage, read_write> ring_probs: array<f32>;    // [ring, layers, experts]
@group(0) @binding(8) var<storage, read_write> ring_lse: array<u32>;      // [ring, layers, 2] lse (f32 bits), flags

// Threads per workgroup: a multiple of K_MAX (SCATTER_WG / K_MAX tokens).
override SCATTER_WG: u32 = 256u;

@compute @workgroup_size(SCATTER_WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tokens_per_wg = SCATTER_WG / K_MAX;
  let t0 = wg.x * tokens_per_wg;
  let t = t0 + li / K_MAX;
  let s = li % K_MAX;
  let words = (P.tokens + 31u) / 32u;
  if (t < P.tokens) {
    let rec = t * REC;
    var e = records[rec + REC_ASSIGNED + s];
    if (s < P.top_k && e != NONE) {
      let at = e * words + t / 32u;
      let below = (1u << (t % 32u)) - 1u;
      let rank = plan[P.off_prefix + at] - plan[P.off_starts + e] + countOneBits(plan[P.off_mask_copy + at] & below);
      if (rank < plan[P.off_kept + e]) {
        let row = plan[P.off_offsets + e] + rank;
        records[rec + REC_ROW + s] = row;
        plan[P.off_row_key + row] = t * K_MAX + s;
      } else {
        records[rec + REC_ASSIGNED + s] = NONE;
        e = NONE;
      }
    }
    let pos = P.position + t;
    if (pos < P.ring_capacity) {
      let slot = (pos * P.num_layers + P.layer) * K_MAX + s;
      ring_chosen[slot] = records[rec + s];
      ring_assigned[slot] = e;
      ring_weights[slot] = bitcast<f32>(records[rec + REC_WEIGHT + s]);
      if (s == 0u) {
        let info = (pos * P.num_layers + P.layer) * 2u;
        ring_lse[info] = records[rec + REC_LSE];
        ring_lse[info + 1u] = records[rec + REC_FLAGS];
      }
    }
  }
  // probability rows of this workgroup's tokens
  let E = P.experts;
  for (var i = li; i < tokens_per_wg * E; i += SCATTER_WG) {
    let tt = t0 + i / E;
    let pos = P.position + tt;
    if (tt < P.tokens && pos < P.ring_capacity) {
      ring_probs[(pos * P.num_layers + P.layer) * E + i % E] = probs[tt * E + i % E];
    }
  }
}
