// Online softmax over one query row's keys [lo, hi) (the inner loop of attention.wgsl and mla_attention.wgsl).
// Keys are walked in chunks of WORKGROUP: thread lid scores key chunk + lid; the chunk's max updates the running max m,
// the running sum l and the accumulators are rescaled by exp(m_old − m_new), and thread lid accumulates the
// probability-weighted value dimensions e = lid + r·WORKGROUP < dims, r < DIMS_PER_THREAD, four keys at a time
// (add_values). Two barriers per chunk; exp arguments are always <= 0. Call from uniform control flow (lo and hi the
// same for the whole workgroup).
//
// The including shader declares `override WORKGROUP: u32` (a multiple of 4), `const DIMS_PER_THREAD: u32`, the shared
// query row `q_sh` (vec4s, pre-multiplied by the scale) and
//   fn key_score(j: u32, g: u32) -> f32         this row's scaled score of key j (g: the kv head, 0 if unused),
//                                               usually row_dot over key j's cache row
//   fn key_vec4(i: u32) -> vec4<f32>            vec4 i of the key cache (for row_dot)
//   fn value_at(j: u32, g: u32, e: u32) -> f32  dimension e of key j's value

// Attention probe (the attention-flow view): pipelines built with ATTENTION_PROBE = true also record the attention
// weights of the step's last query row, per head, in `probe`. online_softmax writes each key's score s_j as it walks
// it; whoever finishes the row (attend when the keys are not split, combine otherwise) calls probe_finish, which turns
// them into the weights the output was made with, exp(s_j − M) / L (M, L: the row's final max and sum over every split
// and the sink), writes 0 for keys below the row's first visible key, and the sink's share exp(sink − M) / L (0 without
// a sink) in the head's slot 0. With ATTENTION_PROBE = false (the engine's default) the writes compile away; the
// binding stays declared, so the host binds a placeholder.

const LOWEST: f32 = -3.4028234e38; // start of the running max; exp(LOWEST − m) = 0
const NO_PROBE: u32 = 0xffffffffu; // probe row of a query row that is not probed

override ATTENTION_PROBE: bool = false;

@group(1) @binding(0) var<storage, read_write> probe: array<f32>; // [heads, probe_stride]: sink share, then key j at 1 + j

var<workgroup> score_sh: array<f32, WORKGROUP>; // this chunk's scores (LOWEST past the range)
var<workgroup> p_sh: array<f32, WORKGROUP>;     // exp(score − running max), 0 past the range

// A row's (or a split's) softmax state: running max, running sum, this thread's unnormalised accumulators.
struct RowSoftmax {
  m: f32,
  l: f32,
  acc: array<f32, DIMS_PER_THREAD>,
}

// q_sh[0, n4) · the key cache's vec4s [kb, kb + n4): four independent loads at a time, then the n4 % 4 left.
fn row_dot(kb: u32, n4: u32) -> f32 {
  var dot4 = vec4<f32>(0.0);
  var i = 0u;
  for (; i + 4u <= n4; i += 4u) {
    let k0 = key_vec4(kb + i);
    let k1 = key_vec4(kb + i + 1u);
    let k2 = key_vec4(kb + i + 2u);
    let k3 = key_vec4(kb + i + 3u);
    dot4 += (q_sh[i] * k0 + q_sh[i + 1u] * k1) + (q_sh[i + 2u] * k2 + q_sh[i + 3u] * k3);
  }
  for (; i < n4; i++) {
    dot4 += q_sh[i] * key_vec4(kb + i);
  }
  return (dot4.x + dot4.y) + (dot4.z + dot4.w);
}

// Where head h's weights go when query row t is the probed one (the step's last, of `tokens`), else NO_PROBE.
fn probe_row(h: u32, t: u32, tokens: u32, stride: u32) -> u32 {
  return select(NO_PROBE, h * stride, ATTENTION_PROBE && t + 1u == tokens);
}

// Turns the probed row's scores of keys [lo, hi) into weights exp(s − m) / l and zeroes keys [0, lo); slot 0 gets
// sink_share. Each thread rewrites keys lid + i·WORKGROUP: call after every score is written (a storage barrier
// when this workgroup wrote them).
fn probe_finish(row: u32, lo: u32, hi: u32, m: f32, l: f32, sink_share: f32, lid: u32) {
  for (var j = lid; j < hi; j += WORKGROUP) {
    let at = row + 1u + j;
    probe[at] = select(0.0, exp(probe[at] - m) / l, j >= lo);
  }
  if (lid == 0u) {
    probe[row] = sink_share;
  }
}

// Adds the p_sh-weighted values of keys [chunk, chunk + 4·quads) to st: keys go four at a time in a loop without
// branches, so each thread has at least four independent value loads in flight per dimension. A key past `last` (the
// range's final key; only the final quad of a partial chunk has any) reads last's value instead, a finite one, which
// its p = 0 then drops.
fn add_values(st: ptr<function, RowSoftmax>, chunk: u32, quads: u32, last: u32, lid: u32, g: u32, dims: u32) {
  for (var i = 0u; i < 4u * quads; i += 4u) {
    (*st).l += (p_sh[i] + p_sh[i + 1u]) + (p_sh[i + 2u] + p_sh[i + 3u]);
  }
  for (var r = 0u; r < DIMS_PER_THREAD; r++) {
    let e = lid + r * WORKGROUP;
    if (e < dims) {
      var acc = (*st).acc[r];
      for (var i = 0u; i < 4u * quads; i += 4u) {
        let keys = min(vec4<u32>(chunk + i) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
        let v = vec4<f32>(value_at(keys.x, g, e), value_at(keys.y, g, e), value_at(keys.z, g, e), value_at(keys.w, g, e));
        acc += dot(vec4<f32>(p_sh[i], p_sh[i + 1u], p_sh[i + 2u], p_sh[i + 3u]), v);
      }
      (*st).acc[r] = acc;
    }
  }
}

// prow: this row's probe_row (NO_PROBE: nothing recorded).
fn online_softmax(lo: u32, hi: u32, lid: u32, g: u32, dims: u32, prow: u32) -> RowSoftmax {
  var st: RowSoftmax; // acc = 0
  st.m = LOWEST;
  for (var chunk = lo; chunk < hi; chunk += WORKGROUP) {
    let j = chunk + lid;
    var s = LOWEST;
    if (j < hi) {
      s = key_score(j, g);
      if (ATTENTION_PROBE && prow != NO_PROBE) {
        probe[prow + 1u + j] = s;
      }
    }
    score_sh[lid] = s;
    workgroupBarrier();

    var m_new = st.m; // the chunk's max, four independent shared reads at a time
    for (var i = 0u; i < WORKGROUP; i += 4u) {
      m_new = max(m_new, max(max(score_sh[i], score_sh[i + 1u]), max(score_sh[i + 2u], score_sh[i + 3u])));
    }
    p_sh[lid] = select(0.0, exp(s - m_new), j < hi);
    workgroupBarrier();

    let alpha = exp(st.m - m_new); // 0 on the first chunk
    st.l *= alpha;
    for (var r = 0u; r < DIMS_PER_THREAD; r++) {
      st.acc[r] *= alpha;
    }
    // A whole chunk takes a constant trip count (unrollable); the last, partial one ceil(n / 4) quads.
    if (hi - chunk >= WORKGROUP) {
      add_values(&st, chunk, WORKGROUP / 4u, hi - 1u, lid, g, dims);
    } else {
      add_values(&st, chunk, (hi - chunk + 3u) / 4u, hi - 1u, lid, g, dims);
    }
    st.m = m_new;
  }
  return st;
}
