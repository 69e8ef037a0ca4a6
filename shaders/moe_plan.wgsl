// MoE dispatch plan: turns the router's choices into per-expert row lists in token order, applies capacity, builds
// the tile list of the grouped expert matmuls, and updates the routing statistics. No CPU readback anywhere.
//
// Input: per expert e a membership bitmask over tokens (bit t set when token t is assigned to e), set by moe_router
// (and moved by moe_reroute). The stable rank of token t in e's list is
//   rank = popcount of e's mask bits below t = prefix[e, t / 32] + popcount(mask[e, t / 32] & ((1 << t % 32) - 1)),
// so lists come out in token order (a stable scatter) without sorting and without atomics.
//   1. prefix: exclusive scan of the per-word popcounts, flattened over [experts, words] (thread-serial runs + one
//      workgroup scan); an expert's count is the difference of its first and next expert's first prefix.
//   2. capacity (drop policy): kept = min(count, capacity) — the first `capacity` tokens in token order keep their slot
//      (under the reroute policy moe_reroute has already moved or dropped the overflow, so everything is kept).
//      Exclusive scans over experts give each expert's first row (offset) and its first tile; tiles are tile_m rows.
//   3. scatter: every (token, slot) gets row = offset[e] + rank (row_key[row] = token·8 + slot), or is dropped
//      (assigned = NONE) when rank ≥ kept.
//   4. statistics for layer l, summed in a fixed order (deterministic): counts += kept, stepCounts = kept,
//      dropped/rerouted, probMass += Σ_t p[t, e], gateSum += Σ gate weights of e's rows, zLossSum += Σ_t lse².
//   5. the masks are cleared for the next layer / step.
// One workgroup of PLAN_WG threads (experts ≤ PLAN_WG).
// #include "lib/moe_params"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read_write> records: array<u32>;     // [max_tokens, REC]
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

var<workgroup> scan_buf: array<u32, PLAN_WG>;
var<workgroup> facc: array<f32, PLAN_WG>;
var<workgroup> e_start: array<u32, 256>;  // prefix value at the expert's first word
var<workgroup> e_kept: array<u32, 256>;
var<workgroup> e_offset: array<u32, 256>;

// Inclusive Hillis–Steele scan of one value per thread; returns (exclusive prefix, total).
fn block_scan(v: u32, li: u32) -> vec2<u32> {
  scan_buf[li] = v;
  workgroupBarrier();
  for (var off = 1u; off < PLAN_WG; off <<= 1u) {
    var add = 0u;
    if (li >= off) { add = scan_buf[li - off]; }
    workgroupBarrier();
    scan_buf[li] += add;
    workgroupBarrier();
  }
  let inclusive = scan_buf[li];
  let total = scan_buf[PLAN_WG - 1u];
  workgroupBarrier();
  return vec2<u32>(inclusive - v, total);
}

// Sum of one f32 per thread in a fixed tree order (deterministic).
fn block_sum(v: f32, li: u32) -> f32 {
  facc[li] = v;
  workgroupBarrier();
  for (var stride = PLAN_WG / 2u; stride > 0u; stride >>= 1u) {
    if (li < stride) { facc[li] += facc[li + stride]; }
    workgroupBarrier();
  }
  let total = facc[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(PLAN_WG)
fn main(@builtin(local_invocation_index) li: u32) {
  let T = P.tokens;
  let E = P.experts;
  let k = P.top_k;
  let words = (T + 31u) / 32u;            // mask words in use per expert
  let n = E * words;                      // flattened [experts, words]
  let per = (n + PLAN_WG - 1u) / PLAN_WG; // entries per thread
  let lo = min(n, li * per);
  let hi = min(n, lo + per);

  // ---- 1. prefix over per-word popcounts ----
  var run = 0u;
  for (var i = lo; i < hi; i++) {
    run += countOneBits(plan[(i / words) * P.mask_words + i % words]);
  }
  let scanned = block_scan(run, li);
  let total = scanned.y;
  run = scanned.x;
  for (var i = lo; i < hi; i++) {
    plan[P.off_prefix + i] = run;
    run += countOneBits(plan[(i / words) * P.mask_words + i % words]);
  }
  storageBarrier();
  workgroupBarrier();

  // ---- 2. capacity, offsets, tiles ----
  var count = 0u;
  var kept = 0u;
  if (li < E) {
    let start = plan[P.off_prefix + li * words];
    let end = select(total, plan[P.off_prefix + (li + 1u) * words], li + 1u < E);
    count = end - start;
    // with re-routing, moe_reroute already resolved the overflow: keep every assignment
    kept = select(count, min(count, P.capacity), P.capacity > 0u && P.reroute_ran == 0u);
    e_start[li] = start;
    e_kept[li] = kept;
  }
  let offset = block_scan(kept, li).x;
  let tiles = (kept + P.tile_m - 1u) / P.tile_m;
  let tiles_scan = block_scan(tiles, li);
  if (li < E) {
    e_offset[li] = offset;
    plan[P.off_offsets + li] = offset;
    plan[P.off_kept + li] = kept;
    for (var j = 0u; j < tiles; j++) {
      plan[P.off_tile_expert + tiles_scan.x + j] = li;
      plan[P.off_tile_row + tiles_scan.x + j] = offset + j * P.tile_m;
    }
  }
  if (li == 0u) { plan[P.off_header] = tiles_scan.y; }
  workgroupBarrier();

  // ---- 3. stable scatter of (token, slot) into the expert lists ----
  for (var i = li; i < T * k; i += PLAN_WG) {
    let t = i / k;
    let s = i % k;
    let e = records[t * REC + REC_ASSIGNED + s];
    if (e == NONE) { continue; }
    let word = t / 32u;
    let below = plan[e * P.mask_words + word] & ((1u << (t % 32u)) - 1u);
    let rank = plan[P.off_prefix + e * words + word] - e_start[e] + countOneBits(below);
    if (rank < e_kept[e]) {
      let row = e_offset[e] + rank;
      records[t * REC + REC_ROW + s] = row;
      plan[P.off_row_key + row] = t * K_MAX + s;
    } else {
      records[t * REC + REC_ASSIGNED + s] = NONE;
    }
  }
  storageBarrier();
  workgroupBarrier();

  // ---- 4. statistics ----
  let se = P.layer * E;
  if (li < E) {
    counts[se + li] += kept;
    step_counts[se + li] = kept;
    var drops = count - kept;
    var moved = 0u;
    if (P.reroute_ran != 0u) {
      drops += plan[P.off_drop_step + li];
      moved = plan[P.off_reroute_step + li];
    }
    dropped[se + li] += drops;
    rerouted[se + li] += moved;
  }
  // probMass and gateSum: G threads per expert, each summing a strided share, then the shares in order.
  let g_per = PLAN_WG / E;
  let my_e = li % E;
  let my_g = li / E;
  var pacc = 0.0;
  var gacc = 0.0;
  if (my_g < g_per) {
    for (var t = my_g; t < T; t += g_per) { pacc += probs[t * E + my_e]; }
    let r0 = e_offset[my_e];
    let r1 = r0 + e_kept[my_e];
    for (var r = r0 + my_g; r < r1; r += g_per) {
      let key = plan[P.off_row_key + r];
      gacc += bitcast<f32>(records[(key / K_MAX) * REC + REC_WEIGHT + key % K_MAX]);
    }
  }
  facc[li] = pacc;
  workgroupBarrier();
  if (li < E) {
    var s = 0.0;
    for (var g = 0u; g < g_per; g++) { s += facc[g * E + li]; }
    prob_mass[se + li] += s;
  }
  workgroupBarrier();
  facc[li] = gacc;
  workgroupBarrier();
  if (li < E) {
    var s = 0.0;
    for (var g = 0u; g < g_per; g++) { s += facc[g * E + li]; }
    gate_sum[se + li] += s;
  }
  workgroupBarrier();
  var zacc = 0.0;
  for (var t = li; t < T; t += PLAN_WG) {
    let lse = bitcast<f32>(records[t * REC + REC_LSE]);
    zacc += lse * lse;
  }
  let zsum = block_sum(zacc, li);
  if (li == 0u) { z_loss_sum[P.layer] += zsum; }

  // ---- 5. clear the masks for the next use ----
  for (var i = li; i < n; i += PLAN_WG) {
    plan[(i / words) * P.mask_words + i % words] = 0u;
  }
}
