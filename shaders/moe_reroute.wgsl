// Capacity with re-routing (the "reroute" overflow policy): tokens are served in token order, slots in rank order;
// an assignment whose expert already holds `capacity` tokens moves to the token's next-best expert that still has
// room, judged by the router's selection score c (ties to the lower index), skipping experts the token already
// chose or was given. With no expert left it is dropped. Runs between moe_router and moe_plan, only under that
// policy: the order dependence makes it sequential over tokens. One workgroup: thread 0 walks the slots, and only an
// overflowing slot costs a parallel arg-max over the experts (one thread per expert).
// A re-routed slot keeps its gate weight; only the expert that processes it changes.
// Writes: records.assigned, the membership masks (bit moved to the new expert), per-expert drop / re-route counts.
// #include "lib/moe_params"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read_write> records: array<u32>;      // [max_tokens, REC]
@group(0) @binding(2) var<storage, read> probs: array<f32>;              // [2, max_tokens, experts]; c at choice_offset
@group(0) @binding(3) var<storage, read_write> plan: array<atomic<u32>>; // masks, drop / re-route counts

const WG: u32 = 256u;

var<workgroup> used: array<u32, 256>;      // assignments each expert holds so far this step
var<workgroup> pending: u32;               // slot of the current token that overflowed, or NONE
var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_e: array<u32, WG>;

// Thread 0: serve slots [from, k) of token t until one overflows; returns that slot or NONE.
fn serve(t: u32, first: u32) -> u32 {
  for (var s = first; s < P.top_k; s++) {
    let e = records[t * REC + REC_ASSIGNED + s];
    if (e == NONE) { continue; }
    if (used[e] < P.capacity) { used[e] += 1u; } else { return s; }
  }
  return NONE;
}

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
  if (li < E) {
    used[li] = 0u;
    atomicStore(&plan[P.off_drop_step + li], 0u);
    atomicStore(&plan[P.off_reroute_step + li], 0u);
  }
  workgroupBarrier();
  for (var t = 0u; t < P.tokens; t++) {
    if (li == 0u) { pending = serve(t, 0u); }
    loop {
      let s = workgroupUniformLoad(&pending);
      if (s == NONE) { break; }
      // arg-max of c over experts with room that this token does not use yet
      var v = 0.0;
      var e = NONE;
      if (li < E && used[li] < P.capacity && !token_has(t, li)) {
        let c = probs[P.choice_offset + t * E + li];
        if (c > -1e29) { v = c; e = li; } // -1e30 marks an ablated expert
      }
      best_v[li] = v;
      best_e[li] = e;
      workgroupBarrier();
      for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
          let oe = best_e[li + stride];
          let mine = best_e[li];
          if (oe != NONE && (mine == NONE || best_v[li + stride] > best_v[li] ||
              (best_v[li + stride] == best_v[li] && oe < mine))) {
            best_v[li] = best_v[li + stride];
            best_e[li] = oe;
          }
        }
        workgroupBarrier();
      }
      if (li == 0u) {
        let old = records[t * REC + REC_ASSIGNED + s];
        let word = t / 32u;
        let bit = 1u << (t % 32u);
        atomicAnd(&plan[old * P.mask_words + word], ~bit);
        let to = best_e[0];
        records[t * REC + REC_ASSIGNED + s] = to;
        if (to == NONE) {
          atomicAdd(&plan[P.off_drop_step + old], 1u);
        } else {
          used[to] += 1u;
          atomicOr(&plan[to * P.mask_words + word], bit);
          atomicAdd(&plan[P.off_reroute_step + to], 1u);
        }
        pending = serve(t, s + 1u);
      }
    }
  }
}
