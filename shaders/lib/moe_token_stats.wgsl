// One token's contribution to the statistics of expert e, shared by moe_plan and moe_plan_partials:
// (router probability of e, gate weight of the token's assignment to e if kept, lse² for the z-loss — expert 0's
// threads carry that one). Assignments of tokens at or past `cut` were dropped by capacity. The including shader
// declares the bindings P, records and probs.
fn token_stats(t: u32, e: u32, cut: u32) -> vec3<f32> {
  var gate = 0.0;
  if (t < cut) {
    for (var s = 0u; s < P.top_k; s++) {
      if (records[t * REC + REC_ASSIGNED + s] == e) {
        gate += bitcast<f32>(records[t * REC + REC_WEIGHT + s]);
      }
    }
  }
  var z = 0.0;
  if (e == 0u) {
    let lse = bitcast<f32>(records[t * REC + REC_LSE]);
    z = lse * lse;
  }
  return vec3<f32>(probs[t * P.experts + e], gate, z);
}
