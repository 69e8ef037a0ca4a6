// Shared by moe_plan (one workgroup, small T) and moe_plan_finish (after the parallel moe_plan_partials, large T).
// Given each expert's member count in e_count and the per-word rank prefix in plan[off_prefix …]: apply capacity
// (the cut-off token), lay out each expert's rows and matmul tiles, and add the layer's count statistics.
// The including shader declares the bindings P, plan, counts, step_counts, dropped and rerouted, and calls
// plan_capacity_and_tiles from uniform control flow (it has workgroup barriers).

var<workgroup> e_count: array<u32, 256>;
var<workgroup> e_kept: array<u32, 256>;
var<workgroup> e_offset: array<u32, 256>;
var<workgroup> e_tile_start: array<u32, 256>;
var<workgroup> e_cutoff: array<u32, 256>; // first token past the expert's capacity (NONE: all kept)

// li: this thread's index (thread e < E serves expert e); words: mask words per expert. Returns (count, kept) of
// expert li (0, 0 for threads past E).
fn plan_capacity_and_tiles(li: u32, E: u32, words: u32) -> vec2<u32> {
  // ---- 2. capacity, cutoffs; offsets and tiles (serial over experts: cheaper than workgroup scans) ----
  var count = 0u;
  var kept = 0u;
  if (li < E) {
    count = e_count[li];
    kept = select(count, min(count, P.capacity), P.capacity > 0u && P.reroute_ran == 0u);
    e_kept[li] = kept;
    var cut = NONE;
    if (kept < count) {
      // the word holding member `kept`: the last word whose rank at its start is ≤ kept
      let start = plan[P.off_starts + li];
      var a = 0u;
      var b = words - 1u;
      loop {
        if (a >= b) { break; }
        let mid = (a + b + 1u) / 2u;
        if (plan[P.off_prefix + li * words + mid] - start <= kept) { a = mid; } else { b = mid - 1u; }
      }
      var bits = plan[P.off_mask_copy + li * words + a];
      for (var skip = kept - (plan[P.off_prefix + li * words + a] - start); skip > 0u; skip--) { bits &= bits - 1u; }
      cut = a * 32u + firstTrailingBit(bits);
    }
    e_cutoff[li] = cut;
  }
  workgroupBarrier();
  if (li == 0u) {
    var rows = 0u;
    var tiles = 0u;
    for (var e = 0u; e < E; e++) {
      e_offset[e] = rows;
      e_tile_start[e] = tiles;
      rows += e_kept[e];
      tiles += (e_kept[e] + P.tile_m - 1u) / P.tile_m;
    }
    plan[P.off_header] = tiles;
  }
  workgroupBarrier();
  if (li < E) {
    let offset = e_offset[li];
    plan[P.off_offsets + li] = offset;
    plan[P.off_kept + li] = kept;
    let first = e_tile_start[li];
    for (var j = 0u; j < (kept + P.tile_m - 1u) / P.tile_m; j++) {
      plan[P.off_tile_expert + first + j] = li;
      plan[P.off_tile_row + first + j] = offset + j * P.tile_m;
    }
  }

  // ---- 3. statistics ----
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
  return vec2<u32>(count, kept);
}
