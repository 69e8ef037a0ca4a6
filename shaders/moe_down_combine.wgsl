// The decode epilogue of a MoE layer in one kernel: the experts' down projection, the weighted combine and (with
// ACCUMULATE) the residual add,
//   v[t, n] = Σ_{s < k, row_s ≠ NONE, e_s in this binding} w[t, s] · (Wd[e_s, n] · h[row_s] + bias[e_s, n])
//             (+ g_t · shared_y[t, n] in the LEAD binding),          down[e] = [H, I], n < H
//   ACCUMULATE: out[t, n] += residual_scale · v;  else LEAD: out[t, n] = v, other bindings: out[t, n] += v
// where row_s, e_s and w[t, s] are the token's record (REC_ROW: its row of h, NONE for a slot dropped by capacity or a
// token not routed; REC_ASSIGNED: the expert; REC_WEIGHT: the gate weight) and g_t the shared expert's gate as in
// moe_combine (sigmoid of REC_SGATE when gated, 1 when not). An expert bank split over several weight buffers is one
// dispatch per buffer, the first (LEAD) adding the shared expert; they run one after another, so the sum has a fixed
// order (no float atomics: repeated runs are bit-identical).
// Work split: a workgroup of WG_K × WG_N threads owns NT output columns n0 .. n0 + NT − 1 of one token (grid x =
// ceil(H / NT), y = tokens); thread group tn takes the slots s = tn, tn + WG_N, …, and its WG_K threads stride over
// I in units of each slot's NT weight rows on the down GEMV's footing (lib/gemv_core: 16 bytes of f32/f16/bf16 with
// ALIGNED, 64 elements of block-quantised weights, else single elements). The slot's gate weight scales its h row
// as it is read, so a thread's NT accumulators carry Σ over its slots of w·(W·h); the WG_N·WG_K partials of each
// column meet in shared memory, where one thread per (group, column) adds its WG_K and one per column the groups'
// sums, in group order.
// h and the weights are viewed as vec4 arrays: allocate them with sizes rounded up to 16 bytes.
// #include "lib/gemv_core"
// #include "lib/moe_expert_params"
// #include "lib/moe_params"

@group(0) @binding(0) var<uniform> P: ExpertParams;               // this binding's experts; k = I, n = H
@group(0) @binding(1) var<uniform> L: LayerParams;                // top_k, shared_mode, residual_scale
@group(0) @binding(2) var<storage, read> records: array<u32>;      // [tokens, REC]
@group(0) @binding(3) var<storage, read> hin: array<vec4<f32>>;    // [rows, I] the experts' activations
@group(0) @binding(4) var<storage, read> plan: array<u32>;         // dispatch plan (bound for lib/moe_expert_params)
@group(0) @binding(5) var<storage, read> w: array<vec4<u32>>;      // [num_experts, H, I] WEIGHT_DTYPE words/blocks
@group(0) @binding(6) var<storage, read> bias: array<f32>;         // [E, H] down biases (HAS_BIAS)
@group(0) @binding(7) var<storage, read> shared_y: array<f32>;     // [tokens, H] shared expert output (shared_mode ≠ 0)
@group(0) @binding(8) var<storage, read_write> out: array<f32>;    // [tokens, H] read, then written

override ALIGNED: bool = true;
override WG_K: u32 = 32u;  // threads splitting a weight row
override WG_N: u32 = 8u;   // thread groups, each taking every WG_N-th slot
override NT: u32 = 2u;     // output columns per workgroup (≤ 8)
override LEAD: bool = true;       // the first weight binding: adds the shared expert, stores without ACCUMULATE
override ACCUMULATE: bool = true; // out += residual_scale · v

override XR: u32 = 1u;
override NW: u32 = NT;
override WG_SIZE: u32 = WG_K * WG_N;

var<private> hrow: u32;   // element offset of the current slot's h row
var<private> gate: f32;   // the current slot's gate weight
var<private> kdim: u32;   // I

fn x_quad(r: u32, i: u32) -> vec4<f32> {
  return gate * hin[(hrow >> 2u) + i];
}

fn x_one(r: u32, k: u32) -> f32 {
  let i = hrow + k;
  return gate * hin[i >> 2u][i & 3u];
}

fn x_live(r: u32) -> bool {
  return true;
}

// Whether slot s of the record at `rec` is processed by an expert of this binding.
fn slot_here(rec: u32, s: u32) -> bool {
  let e = records[rec + REC_ASSIGNED + s];
  return records[rec + REC_ROW + s] != NONE && e != NONE && e >= P.first_expert && e < P.first_expert + P.num_experts;
}

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t = wg.y;
  let rec = t * REC;
  let K = P.k;
  kdim = K;
  let N = P.n;
  let tk = li % WG_K;
  let tn = li / WG_K;
  let n0 = wg.x * NT;
  let unit = select(K, quant_row_bytes(K), is_quant());
  for (var s = tn; s < L.top_k; s += WG_N) {
    if (slot_here(rec, s)) {
      let e = records[rec + REC_ASSIGNED + s];
      hrow = records[rec + REC_ROW + s] * K;
      gate = bitcast<f32>(records[rec + REC_WEIGHT + s]);
      var rows: array<u32, 8>;
      for (var c = 0u; c < NT; c++) { rows[c] = ((e - P.first_expert) * N + min(n0 + c, N - 1u)) * unit; }
      core_accumulate(tk, rows, K);
    }
  }
  core_share(tk, tn);
  // Each (group, column) sum of WG_K partials by its own thread, into the first slot of its row of red (read by
  // that thread alone), then each column's WG_N group sums by one thread, groups in order.
  for (var o = li; o < WG_N * NT; o += WG_SIZE) {
    let s = core_sum(0u, o / NT, o % NT);
    red[((o / NT) * NW + o % NT) * RED_STRIDE] = s;
  }
  workgroupBarrier();

  if (li < NT && n0 + li < N) {
    let n = n0 + li;
    var v = 0.0;
    for (var g = 0u; g < WG_N; g++) { v += red[(g * NW + li) * RED_STRIDE]; }
    if (HAS_BIAS) {
      for (var s = 0u; s < L.top_k; s++) {
        if (slot_here(rec, s)) { v += bitcast<f32>(records[rec + REC_WEIGHT + s]) * expert_bias(records[rec + REC_ASSIGNED + s], n); }
      }
    }
    if (LEAD && L.shared_mode != 0u) {
      var sg = 1.0;
      if (L.shared_mode == 2u) { sg = 1.0 / (1.0 + exp(-bitcast<f32>(records[rec + REC_SGATE]))); }
      v += sg * shared_y[t * N + n];
    }
    let o = t * N + n;
    if (ACCUMULATE) {
      out[o] += L.residual_scale * v;
    } else if (LEAD) {
      out[o] = v;
    } else {
      out[o] += v;
    }
  }
}
