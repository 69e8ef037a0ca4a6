// MoE dispatch plan, second pass after moe_plan_partials (T > PLAN_SPLIT_TOKENS). One workgroup of PLAN_WG threads
// (the device's maximum, up to 1024). Same outputs as the one-workgroup moe_plan; what is left here is short:
//   1. prefix: exclusive scan of the per-block popcount totals counts[e, b], flattened over [experts, blocks]
//      (thread-serial runs + one workgroup scan, in place), then prefix[e, w] += blockStart[e, w / BLOCK_WORDS] for
//      every mask word (one word per thread); start[e] = blockStart[e, 0], count[e] = start[e + 1] − start[e].
//   2. counts and capacity, offsets and tiles: as moe_plan (see its header).
//   3. statistics: counts / stepCounts / dropped / rerouted as moe_plan; probMass, gateSum and zLossSum add the
//      per-block partials in a fixed order (G = PLAN_WG / E threads per expert take a strided share of the blocks,
//      then thread e adds the shares in order: deterministic, no float atomics). gateSum counts only kept
//      assignments: blocks wholly before the expert's cut-off add their partial, the block holding the cut-off is
//      re-summed over its tokens below the cut-off, later blocks add nothing.
// Serial depth at T = 4096, E = 8 (nb = 32 blocks): one scan of 256 values, one word per thread, ≤ 1 block per
// statistics thread — against moe_plan's 32-token loops per thread over the whole step.
// #include "lib/moe_params"
// #include "lib/moe_plan_common"

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
// Mask words per block of moe_plan_partials (PLAN_BLOCK_WORDS in layout.ts; the host sets it).
override BLOCK_WORDS: u32 = 4u;

var<workgroup> scan_buf: array<u32, PLAN_WG>;
var<workgroup> facc: array<f32, PLAN_WG>;
var<workgroup> facc2: array<f32, PLAN_WG>;
var<workgroup> facc3: array<f32, PLAN_WG>;

// Exclusive Hillis–Steele scan of one value per thread; returns (exclusive prefix, total).
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

@compute @workgroup_size(PLAN_WG)
fn main(@builtin(local_invocation_index) li: u32) {
  let T = P.tokens;
  let E = P.experts;
  let k = P.top_k;
  let words = (T + 31u) / 32u;
  let nb = (words + BLOCK_WORDS - 1u) / BLOCK_WORDS;
  let op = P.off_partials;
  let block_tokens = BLOCK_WORDS * 32u;

  // ---- 1. scan the block totals (flattened [experts, blocks], in place), then add each word's block start ----
  let n = E * nb;
  let per = (n + PLAN_WG - 1u) / PLAN_WG;
  let lo = min(n, li * per);
  let hi = min(n, lo + per);
  var run = 0u;
  for (var i = lo; i < hi; i++) { run += plan[op + i]; }
  let scanned = block_scan(run, li);
  run = scanned.x;
  for (var i = lo; i < hi; i++) {
    let c = plan[op + i];
    plan[op + i] = run;
    run += c;
  }
  storageBarrier();
  workgroupBarrier();
  for (var i = li; i < E * words; i += PLAN_WG) {
    let e = i / words;
    plan[P.off_prefix + i] += plan[op + e * nb + (i % words) / BLOCK_WORDS];
  }
  if (li < E) {
    let start = plan[op + li * nb];
    let end = select(scanned.y, plan[op + (li + 1u) * nb], li + 1u < E);
    e_count[li] = end - start;
    plan[P.off_starts + li] = start;
  }
  storageBarrier();
  workgroupBarrier();

  let count_kept = plan_capacity_and_tiles(li, E, words);
  let count = count_kept.x;
  let kept = count_kept.y;
  let se = P.layer * E;
  let g_per = PLAN_WG / E;
  let my_e = li % E;
  let my_g = li / E;
  var pacc = 0.0;
  var gacc = 0.0;
  var zacc = 0.0;
  if (my_g < g_per) {
    let cut = e_cutoff[my_e];
    for (var b = my_g; b < nb; b += g_per) {
      pacc += bitcast<f32>(plan[op + E * nb + my_e * nb + b]);
      let bt0 = b * block_tokens;
      let bt1 = min(T, bt0 + block_tokens);
      if (bt1 <= cut) {
        gacc += bitcast<f32>(plan[op + 2u * E * nb + my_e * nb + b]);
      } else if (bt0 < cut) {
        // the block holding the cut-off: only its assignments below the cut-off are kept
        var part = 0.0;
        for (var t = bt0; t < cut; t++) {
          for (var s = 0u; s < k; s++) {
            if (records[t * REC + REC_ASSIGNED + s] == my_e) {
              part += bitcast<f32>(records[t * REC + REC_WEIGHT + s]);
            }
          }
        }
        gacc += part;
      }
      if (my_e == 0u) { zacc += bitcast<f32>(plan[op + 3u * E * nb + b]); }
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
