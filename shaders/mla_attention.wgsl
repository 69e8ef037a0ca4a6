// Multi-head latent attention over the compressed cache (DeepSeek-V2/V3, absorbed form). Two entry points:
//
// store: the cache row of position p holds [c_p | k_rope_p]: the kv_a_layernorm-ed latent (R = kv_lora_rank values)
//   and the rotated shared rope key (P = qk_rope_head_dim values), W = R + P per position and layer, instead of
//   heads·(nope + rope + v) for expanded K and V. Copies this step's rows to positions [start_pos, start_pos + T);
//   one thread per element, grid-stride. Stepping back needs nothing (rows past a position are rewritten first).
//
// attend: for query row t (position p = start_pos + t) and head h,
//   s_j = scale · (q_lat[t, h] · c_j + q_rope[t, h] · k_rope_j),  j <= p
//   ctx[t, h, :] = Σ_j softmax_j(s) · c_j
//   where q_lat = W_k,hᵀ q_nope (mla_absorb.wgsl absorb_q); expand_v then turns ctx into the head's value output.
//   Equal to softmax(q·kᵀ)·v of the expanded form, without forming per-head K or V.
//   Workgroup (h, t, s), WORKGROUP threads: head h, query row t, key split s covering keys
//   [s·split_keys, (s + 1)·split_keys) of the row's range (splits = 1: all of it). [scale·q_lat | scale·q_rope] sits
//   in shared memory; lib/online_softmax walks the keys in chunks of WORKGROUP, thread i scoring key chunk + i with
//   vec4 loads over its W-long cache row and accumulating latent dimensions i + r·WORKGROUP, r < DIMS_PER_THREAD.
//   splits = 1: writes ctx = acc / l; splits > 1: the split's (m, l, acc) to `partial`.
//
// combine (splits > 1, at most MAX_SPLITS; "flash-decoding", for decode steps whose heads alone leave the GPU idle):
//   one workgroup per (h, t); thread 0 turns the splits' maxima into weights w_s = exp(m_s − M) / Σ exp(m_s − M)·l_s
//   (M = max_s m_s; empty splits carry m = LOWEST, l = 0, so w_s = 0), then ctx = Σ_s w_s·acc_s.
//
// Attention probe (lib/online_softmax, pipelines built with ATTENTION_PROBE): the last row's final weights per head
//   (no sinks: slot 0 is 0), written to group 1's `probe`.

struct Params {
  tokens: u32,        // T query rows (and new cache rows) this step
  start_pos: u32,     // position of row 0 = cache rows already filled
  heads: u32,         // query heads
  rank: u32,          // R = kv_lora_rank, a multiple of 4
  rope: u32,          // P = qk_rope_head_dim, a multiple of 4
  q_stride: u32,      // elements between tokens in q (heads·(nope + P))
  q_head_stride: u32, // elements between heads in q (nope + P)
  q_offset: u32,      // offset of the rope part of head 0 in q (nope)
  splits: u32,        // key splits per (row, head); 1 = attend writes ctx itself
  split_keys: u32,    // keys per split
  scale: f32,         // softmax scale (DeepSeek: YaRN mscale² / sqrt(nope + P))
  probe_stride: u32,  // floats per head in `probe` (lib/online_softmax): max_seq + 1
}

@group(0) @binding(0) var<uniform> params: Params;

// ---- store bindings
@group(0) @binding(1) var<storage, read> latent: array<f32>;        // [T, W]: c in columns [0, R) (kv_a_layernorm output)
@group(0) @binding(2) var<storage, read> kv_a: array<f32>;          // [T, W]: rotated k_rope in columns [R, W)
@group(0) @binding(3) var<storage, read_write> store_cache: array<f32>; // [max_seq, W]

override STORE_WORKGROUP: u32 = 256u;

@compute @workgroup_size(STORE_WORKGROUP)
fn store(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let width = params.rank + params.rope;
  let count = params.tokens * width;
  for (var i = gid.x; i < count; i += groups.x * STORE_WORKGROUP) {
    let c = i % width;
    store_cache[params.start_pos * width + i] = select(kv_a[i], latent[i], c < params.rank);
  }
}

// ---- attend bindings
@group(0) @binding(1) var<storage, read> q_lat: array<f32>;         // [T, heads, R] absorbed q_nope
@group(0) @binding(2) var<storage, read> q: array<f32>;             // [T, q_stride]: rope part of head h at q_offset + t·q_stride + h·q_head_stride
@group(0) @binding(3) var<storage, read> cache: array<vec4<f32>>;   // [max_seq, W / 4]
@group(0) @binding(4) var<storage, read_write> ctx: array<f32>;     // [T, heads, R] (splits = 1)
@group(0) @binding(5) var<storage, read_write> partial: array<f32>; // [T, heads, splits, 2 + R]: m, l, acc (splits > 1)

override WORKGROUP: u32 = 64u;     // keys per chunk = threads per (head, query row)
override MAX_WIDTH: u32 = 576u;    // W = R + P the shared query row holds (DeepSeek: 512 + 64)
const DIMS_PER_THREAD: u32 = 8u;   // so R <= 8 · WORKGROUP (checked on the host)

var<workgroup> q_sh: array<vec4<f32>, MAX_WIDTH / 4u>; // scale · [q_lat | q_rope]

// online_softmax (lib/online_softmax) over this workgroup's query row: scale · [q_lat | q_rope] · cache row j, and
// the latent c_j as the value.
// #include "lib/online_softmax"

fn key_score(j: u32, g: u32) -> f32 {
  let w4 = (params.rank + params.rope) / 4u;
  return row_dot(j * w4, w4);
}

fn key_vec4(i: u32) -> vec4<f32> {
  return cache[i];
}

fn value_at(j: u32, g: u32, e: u32) -> f32 {
  return cache[j * ((params.rank + params.rope) / 4u) + e / 4u][e % 4u];
}

@compute @workgroup_size(WORKGROUP)
fn attend(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = params.rank;
  let w4 = (r + params.rope) / 4u;
  let r4 = r / 4u;
  let h = wg.x;
  let t = wg.y;
  let split = wg.z;
  let pos = params.start_pos + t;

  let lat_base = (t * params.heads + h) * r;
  let rope_base = params.q_offset + t * params.q_stride + h * params.q_head_stride;
  for (var i = lid; i < w4; i += WORKGROUP) {
    var v: vec4<f32>;
    if (i < r4) {
      let e = lat_base + 4u * i;
      v = vec4<f32>(q_lat[e], q_lat[e + 1u], q_lat[e + 2u], q_lat[e + 3u]);
    } else {
      let e = rope_base + 4u * (i - r4);
      v = vec4<f32>(q[e], q[e + 1u], q[e + 2u], q[e + 3u]);
    }
    q_sh[i] = v * params.scale;
  }
  workgroupBarrier();

  let lo = split * params.split_keys; // this split's keys: [lo, hi)
  let hi = min(pos + 1u, lo + params.split_keys);
  let prow = probe_row(h, t, params.tokens, params.probe_stride);
  var row_sm = online_softmax(lo, hi, lid, 0u, r, prow);

  // splits = 1: the normalised context; otherwise this split's record: m, l, then the unnormalised accumulators.
  let single = params.splits == 1u;
  let rec = ((t * params.heads + h) * params.splits + split) * (r + 2u);
  if (!single && lid == 0u) {
    partial[rec] = row_sm.m;
    partial[rec + 1u] = row_sm.l;
  }
  let inv_l = 1.0 / row_sm.l; // unused (and possibly inf) for an empty split
  if (single && prow != NO_PROBE) {
    storageBarrier();
    probe_finish(prow, 0u, hi, row_sm.m, row_sm.l, 0.0, lid);
  }
  for (var k = 0u; k < DIMS_PER_THREAD; k++) {
    let e = lid + k * WORKGROUP;
    if (e < r && single) {
      ctx[lat_base + e] = row_sm.acc[k] * inv_l;
    } else if (e < r) {
      partial[rec + 2u + e] = row_sm.acc[k];
    }
  }
}

// ---- combine bindings
@group(0) @binding(1) var<storage, read> partial_in: array<f32>;   // [T, heads, splits, 2 + R]
@group(0) @binding(2) var<storage, read_write> merged: array<f32>; // [T, heads, R] ctx

const MAX_SPLITS: u32 = 32u;
var<workgroup> split_w: array<f32, MAX_SPLITS>; // exp(m_s − M) / Σ_s exp(m_s − M)·l_s
var<workgroup> row_max_sum: vec2<f32>;          // M, Σ_s exp(m_s − M)·l_s (for the probe)

@compute @workgroup_size(WORKGROUP)
fn combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = params.rank;
  let rec_len = r + 2u;
  let row = wg.y * params.heads + wg.x; // t · heads + h
  let first = row * params.splits * rec_len;
  if (lid == 0u) {
    var top = LOWEST;
    for (var s = 0u; s < params.splits; s++) {
      top = max(top, partial_in[first + s * rec_len]);
    }
    var total = 0.0;
    for (var s = 0u; s < params.splits; s++) {
      let w = exp(partial_in[first + s * rec_len] - top);
      split_w[s] = w;
      total += w * partial_in[first + s * rec_len + 1u];
    }
    for (var s = 0u; s < params.splits; s++) {
      split_w[s] /= total;
    }
    row_max_sum = vec2<f32>(top, total);
  }
  workgroupBarrier();
  let prow = probe_row(wg.x, wg.y, params.tokens, params.probe_stride);
  if (prow != NO_PROBE) {
    let stats = row_max_sum;
    probe_finish(prow, 0u, params.start_pos + wg.y + 1u, stats.x, stats.y, 0.0, lid);
  }
  for (var e = lid; e < r; e += WORKGROUP) {
    var sum = 0.0;
    for (var s = 0u; s < params.splits; s++) {
      sum += split_w[s] * partial_in[first + s * rec_len + 2u + e];
    }
    merged[row * r + e] = sum;
  }
}
