// MoE combine: out[t] = Σ_{s < k, slot kept} w[t, s] · y[row(t, s)]  (+ g_t · shared_y[t]),
// or with ACCUMULATE (the residual add fused): out[t] += residual_scale · (that sum), out being the residual stream
// summed in slot order (a gather, no float atomics: repeated runs are bit-identical), where g_t = sigmoid(x·w_gate)
// for a gated shared expert (Qwen2-MoE) and 1 for an ungated one (DeepSeek). One workgroup per token; threads
// stride over H.
// #include "lib/moe_params"

@group(0) @binding(0) var<uniform> P: LayerParams;
@group(0) @binding(1) var<storage, read> records: array<u32>;           // [max_tokens, REC]
@group(0) @binding(2) var<storage, read> y: array<f32>;                 // [rows, H] expert outputs
@group(0) @binding(3) var<storage, read> shared_y: array<f32>;          // [tokens, H] shared expert output
@group(0) @binding(4) var<storage, read_write> out: array<f32>;         // [tokens, H] (ACCUMULATE: read, then written)

override COMBINE_WG: u32 = 256u;
override ACCUMULATE: bool = false;

@compute @workgroup_size(COMBINE_WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (t >= P.tokens) { return; }
  let H = P.hidden;
  let rec = t * REC;
  var rows = array<u32, 8>();
  var w = array<f32, 8>();
  for (var s = 0u; s < K_MAX; s++) {
    rows[s] = select(NONE, records[rec + REC_ROW + s], s < P.top_k);
    w[s] = bitcast<f32>(records[rec + REC_WEIGHT + s]);
  }
  var sg = 1.0;
  if (P.shared_mode == 2u) { sg = 1.0 / (1.0 + exp(-bitcast<f32>(records[rec + REC_SGATE]))); }
  for (var c = li; c < H; c += COMBINE_WG) {
    var acc = 0.0;
    for (var s = 0u; s < K_MAX; s++) {
      if (rows[s] != NONE) { acc += w[s] * y[rows[s] * H + c]; }
    }
    if (P.shared_mode != 0u) { acc += sg * shared_y[t * H + c]; }
    if (ACCUMULATE) { out[t * H + c] += P.residual_scale * acc; } else { out[t * H + c] = acc; }
  }

}
