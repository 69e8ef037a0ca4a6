// Routing record -> per-instance values of the 3D grid, run every frame on the GPU (no CPU readback).
//
// Algorithm: one workgroup per layer. Its threads stride over the layer's experts to reduce the sum of the displayed
// quantity, and over its columns (one expert each, or a group of experts: cols) for the maximum, then write each
// column instance's values. A column's value is the sum over its experts; its fair share is the layer's total × its
// experts / all experts. Thread 0 also writes the layer's
// shared-expert and dense-layer instances (always-on parts of the model, drawn at a fixed height, colour t = -1
// for a shared expert, -2 for a dense layer; -3 marks a layer with nothing recorded: neutral colours chosen by the
// material).
//
// Displayed quantity v per (layer, expert), by mode:
//   0 cumulative load   counts (u32)                height ∝ v / layer mean (1 = fair share), t = r / (1 + r)
//   1 current token     stepCounts (u32)            height ∝ v / layer max,                  t = v / max
//   2 probability mass  probMass (f32 bits)         like mode 0
//   3 dropped/re-routed dropped + rerouted (u32)    height ∝ v / layer max, t = rerouted / v (0 all dropped)
//   4 causal atlas      Δ log-likelihood (f32 bits) height ∝ |v| / atlasMax (the largest |Δ| of any layer),
//                       of ablating the expert       t = 0.5 − v / (2·atlasMax): 1 = costs the most, 0.5 = no change;
//                                                    atlasMax = 0: no atlas yet, NaN: expert not swept (t = -3;
//                                                    a group: none of its experts swept)
//
// Bindings (group 0):
//   0 uniform  Params
//   1 storage  srcA   [layers, experts] u32 (counts / stepCounts / probMass bits / dropped / atlas Δ bits)
//   2 storage  srcB   [layers, experts] u32 (rerouted in mode 3; unused otherwise)
//   3 storage  rows   [layers] vec4<u32>: first routed-expert instance, shared instance, dense instance (NONE if
//                     absent), visible (0/1)
//   4 storage  out    [instances] vec4<f32>: height (world units), colour t (< 0 = neutral), raw v, visible (0/1)
//   5 storage  ablated [layers, experts] u32: 1 = expert ablated by the user (drawn in its own colour, t = -4; a
//                     group when all its experts are)
//   6 storage  cols   [numColumns + 1] u32: column c covers experts [cols[c], cols[c + 1])

const NONE: u32 = 0xffffffffu;
override WG: u32 = 64u;

struct Params {
  mode: u32,
  numLayers: u32,
  numExperts: u32,
  numColumns: u32,
  heightScale: f32,
  maxRatio: f32,
  atlasMax: f32,
  _pad3: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> srcA: array<u32>;
@group(0) @binding(2) var<storage, read> srcB: array<u32>;
@group(0) @binding(3) var<storage, read> rows: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> ablated: array<u32>;
@group(0) @binding(6) var<storage, read> cols: array<u32>;

var<workgroup> sums: array<f32, WG>;
var<workgroup> maxs: array<f32, WG>;

fn value(i: u32) -> f32 {
  switch params.mode {
    case 2u, 4u: { return bitcast<f32>(srcA[i]); }
    case 3u: { return f32(srcA[i]) + f32(srcB[i]); }
    default: { return f32(srcA[i]); }
  }
}

/** An atlas entry that is NaN (the expert was not in the sweep): tested on the bits, as NaN compares may fold away. */
fn unswept(i: u32) -> bool {
  return params.mode == 4u && (srcA[i] & 0x7f800000u) == 0x7f800000u;
}

/**
 * The column's value: displayed quantity and srcB, summed over its experts (unswept atlas entries count 0); how many
 * of them are ablated; how many were not in the atlas sweep.
 */
fn column(base: u32, c: u32) -> vec4<f32> {
  var v = 0.0;
  var b = 0.0;
  var off = 0.0;
  var missing = 0.0;
  for (var e = cols[c]; e < cols[c + 1u]; e++) {
    if (unswept(base + e)) {
      missing += 1.0;
    } else {
      v += value(base + e);
    }
    b += f32(srcB[base + e]);
    off += f32(ablated[base + e] != 0u);
  }
  return vec4<f32>(v, b, off, missing);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let layer = wg.x;
  if (layer >= params.numLayers) { return; }
  let row = rows[layer];
  let visible = f32(row.w);
  let E = params.numExperts;
  let base = layer * E;

  var s = 0.0;
  var m = 0.0;
  if (row.x != NONE) {
    for (var e = tid; e < E; e += WG) {
      s += value(base + e);
    }
    for (var c = tid; c < params.numColumns; c += WG) {
      m = max(m, column(base, c).x);
    }
  }
  sums[tid] = s;
  maxs[tid] = m;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    if (tid < stride) {
      sums[tid] += sums[tid + stride];
      maxs[tid] = max(maxs[tid], maxs[tid + stride]);
    }
    workgroupBarrier();
  }
  let total = sums[0];
  let peak = maxs[0];

  if (row.x != NONE) {
    for (var c = tid; c < params.numColumns; c += WG) {
      let col = column(base, c);
      var v = col.x;
      let width = f32(cols[c + 1u] - cols[c]);
      let fair = total * width / f32(E);
      var h = 0.0;
      var t = 0.0;
      if (params.mode == 0u || params.mode == 2u) {
        let r = select(0.0, v / fair, fair > 0.0);
        h = 0.5 * min(r, params.maxRatio);
        t = r / (1.0 + r);
      } else if (params.mode == 4u) {
        // A group: the sum of its experts' Δ, capped at the largest single expert's.
        let r = clamp(select(0.0, v / params.atlasMax, params.atlasMax > 0.0), -1.0, 1.0);
        h = 1.5 * abs(r);
        t = 0.5 - 0.5 * r;
        if (col.w >= width) { // none of its experts was in the sweep
          h = 0.0;
          t = -3.0;
          v = value(base + cols[c]); // NaN, the atlas's "not swept" (read at run time: a NaN constant is no WGSL)
        }
      } else {
        let r = select(0.0, v / peak, peak > 0.0);
        h = 1.5 * r;
        if (params.mode == 1u) {
          t = r;
        } else {
          t = select(0.0, col.y / v, v > 0.0);
        }
      }
      // A layer with nothing recorded yet (or a config-only skeleton) is drawn in a neutral colour (t = -3).
      if (select(total <= 0.0, params.atlasMax <= 0.0, params.mode == 4u)) { t = -3.0; }
      if (col.z >= width) { t = -4.0; }
      out[row.x + c] = vec4<f32>(h * params.heightScale * visible, t, v, visible);
    }
  }
  if (tid == 0u) {
    let fixedHeight = 0.5 * params.heightScale * visible;
    if (row.y != NONE) { out[row.y] = vec4<f32>(fixedHeight, -1.0, 0.0, visible); }
    if (row.z != NONE) { out[row.z] = vec4<f32>(fixedHeight * 0.5, -2.0, 0.0, visible); }
  }
}
