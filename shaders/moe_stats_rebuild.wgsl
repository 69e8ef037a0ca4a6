// Rebuilds the cumulative routing statistics of every layer from the per-token ring, for positions [0, positions):
// after a step back or a reset (positions = 0 zeroes them). One workgroup per (expert, layer); 64 threads stride over
// positions and their sums are combined in a fixed tree order, so a rebuild is deterministic.
// Two entry points (their bindings share numbers; each pipeline uses only its own):
//   assignments:   counts, stepCounts (the last position only), gateSum, dropped, rerouted from chosen/assigned/weights
//   probabilities: probMass from the probability ring, zLossSum from the logsumexp ring

struct Params {
  positions: u32,   // rebuild from ring rows [0, positions)
  num_layers: u32,
  experts: u32,
  _pad: u32,
}

const K_MAX: u32 = 8u;
const NONE: u32 = 0xffffffffu;
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> ring_chosen: array<u32>;     // [ring, layers, K_MAX]
@group(0) @binding(2) var<storage, read> ring_assigned: array<u32>;   // [ring, layers, K_MAX]
@group(0) @binding(3) var<storage, read> ring_weights: array<f32>;    // [ring, layers, K_MAX]
@group(0) @binding(4) var<storage, read_write> counts: array<u32>;    // [layers, experts]
@group(0) @binding(5) var<storage, read_write> step_counts: array<u32>;
@group(0) @binding(6) var<storage, read_write> gate_sum: array<f32>;
@group(0) @binding(7) var<storage, read_write> dropped: array<u32>;
@group(0) @binding(8) var<storage, read_write> rerouted: array<u32>;

@group(0) @binding(1) var<storage, read> ring_probs: array<f32>;      // [ring, layers, experts]
@group(0) @binding(2) var<storage, read> ring_lse: array<f32>;        // [ring, layers, 2] lse, flags (u32 bits)
@group(0) @binding(3) var<storage, read_write> prob_mass: array<f32>; // [layers, experts]
@group(0) @binding(4) var<storage, read_write> z_loss_sum: array<f32>; // [layers]

var<workgroup> usum: array<vec3<u32>, WG>;
var<workgroup> fsum: array<f32, WG>;

fn tree_reduce(li: u32) {
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (li < stride) {
      usum[li] += usum[li + stride];
      fsum[li] += fsum[li + stride];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn assignments(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let e = wg.x;
  let l = wg.y;
  var n = vec3<u32>(0u); // assigned, dropped from e, re-routed to e
  var g = 0.0;
  for (var p = li; p < P.positions; p += WG) {
    let base = (p * P.num_layers + l) * K_MAX;
    for (var s = 0u; s < K_MAX; s++) {
      let ch = ring_chosen[base + s];
      let given = ring_assigned[base + s];
      if (given == e) {
        n.x += 1u;
        g += ring_weights[base + s];
        if (ch != e) { n.z += 1u; }
      } else if (ch == e && given == NONE) {
        n.y += 1u;
      }
    }
  }
  usum[li] = n;
  fsum[li] = g;
  workgroupBarrier();
  tree_reduce(li);
  if (li == 0u) {
    let i = l * P.experts + e;
    counts[i] = usum[0].x;
    dropped[i] = usum[0].y;
    rerouted[i] = usum[0].z;
    gate_sum[i] = fsum[0];
    var last = 0u;
    if (P.positions > 0u) {
      let base = ((P.positions - 1u) * P.num_layers + l) * K_MAX;
      for (var s = 0u; s < K_MAX; s++) { last += select(0u, 1u, ring_assigned[base + s] == e); }
    }
    step_counts[i] = last;
  }
}

@compute @workgroup_size(WG)
fn probabilities(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let e = wg.x;
  let l = wg.y;
  var pm = 0.0;
  var z = 0.0;
  for (var p = li; p < P.positions; p += WG) {
    pm += ring_probs[(p * P.num_layers + l) * P.experts + e];
    let lse = ring_lse[(p * P.num_layers + l) * 2u];
    z += lse * lse;
  }
  usum[li] = vec3<u32>(0u);
  fsum[li] = pm;
  workgroupBarrier();
  tree_reduce(li);
  if (li == 0u) { prob_mass[l * P.experts + e] = fsum[0]; }
  workgroupBarrier();
  if (e == 0u) {
    fsum[li] = z;
    workgroupBarrier();
    tree_reduce(li);
    if (li == 0u) { z_loss_sum[l] = fsum[0]; }
  }
}
