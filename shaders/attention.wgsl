// Causal attention over a per-layer KV cache, grouped-query heads, optional sliding window. Three entry points:
//
// store_kv: copies this step's K and V rows into the cache at positions [start_pos, start_pos + T).
//   One thread per element, grid-stride. Stepping back needs nothing: the host runs the next step with a smaller
//   start_pos and the rows past it are overwritten before anything reads them (attention never reads past its own
//   position).
//
// attend: out[t, h, :] = Σ_j softmax_j(scale · q[t, h, :] · k[j, g, :]) · v[j, g, :], g = h / (heads / kv_heads),
//   query t at position p = start_pos + t, keys j visible iff j <= p and (window == 0 or p − j < window).
//   The window test is transformers' sliding_window_overlay (kv_idx > q_idx − sliding_window): a query sees itself
//   and the window − 1 keys before it.
//   Workgroup (h, t, s): head h, query row t, key split s. Split s covers keys
//   [split_base + s·split_keys, split_base + (s + 1)·split_keys) of the row's visible range (splits = 1: all of it).
//   Keys are walked by lib/online_softmax in chunks of WORKGROUP: thread i scores key chunk + i with vec4 loads (q,
//   pre-multiplied by the scale, sits in shared memory) and accumulates the probability-weighted V of up to
//   DIMS_PER_THREAD dimensions (d = lid + r·WORKGROUP).
//   splits = 1: writes out = acc / l. splits > 1: writes the split's (m, l, acc[d]) to `partial` for combine.
//
// combine (splits > 1 only, at most MAX_SPLITS; "flash-decoding"): one workgroup per (h, t) merges the splits'
//   partial results: M = max_s m_s, out = Σ_s exp(m_s − M)·acc_s / Σ_s exp(m_s − M)·l_s. Empty splits carry
//   m = LOWEST, l = 0.
//   Splitting keeps the GPU busy when T · heads is small (decode) and the context long.
//
// Attention sinks (gpt-oss, params.sinks = 1): head h's learned logit sink[h] joins the softmax as one more score
//   with a zero value: it enters the max and the sum where the row is finished (attend when splits = 1, combine
//   otherwise), M' = max(M, sink), out = acc·exp(M − M') / (l·exp(M − M') + exp(sink − M')).
//
// Attention probe (lib/online_softmax, pipelines built with ATTENTION_PROBE): the last row's final weights per head,
//   exp(s_j − M') / L', and the sink's share exp(sink − M') / L' in slot 0, written to group 1's `probe`.

struct Params {
  tokens: u32,     // T query rows (and new K/V rows) this step
  start_pos: u32,  // position of row 0 = cache rows already filled
  heads: u32,      // query heads
  kv_heads: u32,   // key/value heads; heads % kv_heads == 0
  head_dim: u32,   // d, a multiple of 4
  window: u32,     // sliding window in keys (query included); 0 = unlimited
  q_stride: u32,   // elements between tokens in q (heads·d when contiguous)
  q_offset: u32,   // element offset of token 0, head 0 in q
  kv_stride: u32,  // elements between tokens in k_new / v_new (kv_heads·d when contiguous)
  k_offset: u32,   // element offset of token 0, kv head 0 in k_new
  v_offset: u32,   // element offset of token 0, kv head 0 in v_new
  splits: u32,     // key splits per (row, head); 1 = attend writes out itself
  split_base: u32, // first key of split 0 (the lowest key any row sees)
  split_keys: u32, // keys per split
  scale: f32,      // softmax scale: 1/sqrt(d), or the family's override (Granite attention_multiplier)
  sinks: u32,      // 1: sink logits in `sink_logits` / `sink_logits_c` join every row's softmax; 0: none
  probe_stride: u32, // floats per head in `probe` (lib/online_softmax): max_seq + 1
}

@group(0) @binding(0) var<uniform> params: Params;

// ---- store_kv bindings
@group(0) @binding(1) var<storage, read> k_new: array<f32>;          // [T, kv_stride]: kv head g at k_offset + t·kv_stride + g·d
@group(0) @binding(2) var<storage, read> v_new: array<f32>;          // [T, kv_stride]: kv head g at v_offset + t·kv_stride + g·d
@group(0) @binding(3) var<storage, read_write> k_store: array<f32>;  // [max_seq, kv_heads, d] this layer's K cache
@group(0) @binding(4) var<storage, read_write> v_store: array<f32>;  // [max_seq, kv_heads, d] this layer's V cache

override STORE_WORKGROUP: u32 = 256u;

@compute @workgroup_size(STORE_WORKGROUP)
fn store_kv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let width = params.kv_heads * params.head_dim;
  let count = params.tokens * width;
  for (var i = gid.x; i < count; i += groups.x * STORE_WORKGROUP) {
    let t = i / width;
    let c = i - t * width;
    let dst = (params.start_pos + t) * width + c;
    k_store[dst] = k_new[params.k_offset + t * params.kv_stride + c];
    v_store[dst] = v_new[params.v_offset + t * params.kv_stride + c];
  }
}

// ---- attend bindings
@group(0) @binding(1) var<storage, read> q: array<f32>;                // [T, q_stride]: head h at q_offset + t·q_stride + h·d
@group(0) @binding(2) var<storage, read> k_cache: array<vec4<f32>>;    // [max_seq, kv_heads, d / 4]
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;          // [max_seq, kv_heads, d]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;        // [T, heads, d] (splits = 1)
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;    // [T, heads, splits, 2 + d]: m, l, acc (splits > 1)
@group(0) @binding(6) var<storage, read> sink_logits: array<f32>;      // [heads] sink logit per head (read when sinks = 1)

override WORKGROUP: u32 = 64u;      // keys per chunk = threads per (head, query row, split)
override MAX_HEAD_DIM: u32 = 256u;  // size of the shared q row
const DIMS_PER_THREAD: u32 = 4u;    // so d <= 4 · WORKGROUP (checked on the host)

var<workgroup> q_sh: array<vec4<f32>, MAX_HEAD_DIM / 4u>; // scale · q[t, h, :]

// online_softmax (lib/online_softmax) over this workgroup's query row: scale · q · k_j and v_j of kv head g.
// #include "lib/online_softmax"

// The first key a query at position pos sees: pos + 1 − window, or 0.
fn first_visible(pos: u32) -> u32 {
  return select(0u, pos + 1u - params.window, params.window > 0u && pos + 1u > params.window);
}

fn key_score(j: u32, g: u32) -> f32 {
  let d4 = params.head_dim / 4u;
  return row_dot((j * params.kv_heads + g) * d4, d4);
}

fn key_vec4(i: u32) -> vec4<f32> {
  return k_cache[i];
}

fn value_at(j: u32, g: u32, e: u32) -> f32 {
  return v_cache[(j * params.kv_heads + g) * params.head_dim + e];
}

@compute @workgroup_size(WORKGROUP)
fn attend(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let split = wg.z;
  let d = params.head_dim;
  let d4 = d / 4u;
  let g = h / (params.heads / params.kv_heads);
  let pos = params.start_pos + t;

  let q_base = params.q_offset + t * params.q_stride + h * d;
  for (var i = lid; i < d4; i += WORKGROUP) {
    let e = q_base + 4u * i;
    q_sh[i] = vec4<f32>(q[e], q[e + 1u], q[e + 2u], q[e + 3u]) * params.scale;
  }
  workgroupBarrier();

  // Visible keys of this row, cut to this split: [lo, hi).
  let split_lo = params.split_base + split * params.split_keys;
  let lo = max(first_visible(pos), split_lo);
  let hi = min(pos + 1u, split_lo + params.split_keys);

  let prow = probe_row(h, t, params.tokens, params.probe_stride);
  var row_sm = online_softmax(lo, hi, lid, g, d, prow);
  let m = row_sm.m;
  var l = row_sm.l;

  if (params.splits == 1u) {
    let out_base = (t * params.heads + h) * d;
    var keep = 1.0; // exp(m − M') when a sink raises the max
    var m_sink = m; // M'
    var sink_share = 0.0;
    if (params.sinks == 1u) {
      let sink = sink_logits[h];
      m_sink = max(m, sink);
      keep = exp(m - m_sink);
      l = l * keep + exp(sink - m_sink);
      sink_share = exp(sink - m_sink) / l;
    }
    if (prow != NO_PROBE) {
      storageBarrier();
      probe_finish(prow, lo, hi, m_sink, l, sink_share, lid);
    }
    let inv_l = keep / l;
    for (var r = 0u; r < DIMS_PER_THREAD; r++) {
      let e = lid + r * WORKGROUP;
      if (e < d) {
        out[out_base + e] = row_sm.acc[r] * inv_l;
      }
    }
  } else {
    let rec = ((t * params.heads + h) * params.splits + split) * (d + 2u);
    if (lid == 0u) {
      partial[rec] = m;
      partial[rec + 1u] = l;
    }
    for (var r = 0u; r < DIMS_PER_THREAD; r++) {
      let e = lid + r * WORKGROUP;
      if (e < d) {
        partial[rec + 2u + e] = row_sm.acc[r];
      }
    }
  }
}

// ---- combine bindings
@group(0) @binding(1) var<storage, read> partial_in: array<f32>;    // [T, heads, splits, 2 + d]
@group(0) @binding(2) var<storage, read_write> merged: array<f32>;  // [T, heads, d] the attention output
@group(0) @binding(3) var<storage, read> sink_logits_c: array<f32>; // [heads] sink logit per head (read when sinks = 1)

const MAX_SPLITS: u32 = 64u;                     // most splits combine merges (the host caps the policy's maxSplits)
var<workgroup> split_m: array<f32, MAX_SPLITS>;  // m_s, then exp(m_s − M)
var<workgroup> split_l: array<f32, MAX_SPLITS>;  // l_s

@compute @workgroup_size(WORKGROUP)
fn combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let d = params.head_dim;
  let splits = params.splits;
  let rec = d + 2u;
  let base = (t * params.heads + h) * splits * rec;
  // Every split's (m, l) in one round of loads, then every thread reads them from shared memory.
  for (var s = lid; s < splits; s += WORKGROUP) {
    split_m[s] = partial_in[base + s * rec];
    split_l[s] = partial_in[base + s * rec + 1u];
  }
  workgroupBarrier();
  var big_m = LOWEST;
  for (var s = 0u; s < splits; s++) {
    big_m = max(big_m, split_m[s]);
  }
  var big_l = 0.0;
  if (params.sinks == 1u) {
    let sink = sink_logits_c[h];
    big_m = max(big_m, sink);
    big_l = exp(sink - big_m);
  }
  let sink_part = big_l; // exp(sink − M), 0 without sinks
  for (var s = 0u; s < splits; s++) {
    big_l += split_l[s] * exp(split_m[s] - big_m);
  }
  workgroupBarrier(); // every thread has read the maxima: they become the splits' weights
  for (var s = lid; s < splits; s += WORKGROUP) {
    split_m[s] = exp(split_m[s] - big_m);
  }
  workgroupBarrier();
  let inv_l = 1.0 / big_l;
  let prow = probe_row(h, t, params.tokens, params.probe_stride);
  if (prow != NO_PROBE) {
    let pos = params.start_pos + t;
    probe_finish(prow, first_visible(pos), pos + 1u, big_m, big_l, sink_part * inv_l, lid);
  }
  // out = Σ_s exp(m_s − M)·acc_s / L: four splits' loads in flight at a time, then the splits % 4 left.
  for (var e = lid; e < d; e += WORKGROUP) {
    var acc = 0.0;
    var s = 0u;
    for (; s + 4u <= splits; s += 4u) {
      let at = base + s * rec + 2u + e;
      let a = vec4<f32>(partial_in[at], partial_in[at + rec], partial_in[at + 2u * rec], partial_in[at + 3u * rec]);
      acc += dot(vec4<f32>(split_m[s], split_m[s + 1u], split_m[s + 2u], split_m[s + 3u]), a);
    }
    for (; s < splits; s++) {
      acc += partial_in[base + s * rec + 2u + e] * split_m[s];
    }
    merged[(t * params.heads + h) * d + e] = acc * inv_l;
  }
}
