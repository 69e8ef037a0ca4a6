// Shared by the MoE routers (moe_router: one workgroup per RT tokens; moe_router_select: one workgroup per token after
// moe_router_logits): the what-if transform of a logit and the finiteness test. The including shader declares P
// (LayerParams) and `aux` ([2, experts] router bias, correction bias).

// Stands in for -inf in group scores of ablated experts (WGSL has no infinity literals).
const EXCLUDED: f32 = -1e30;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Noise keyed by (seed, layer, position, expert): the sum of 12 uniform 20-bit integers from a counter-based hash,
// centred and scaled (Irwin–Hall: mean 0, variance 1, within ±6). Integer arithmetic only, so the value is exact and
// equal to routerNoise() in src/model/routing-noise.ts bit for bit.
fn noise(seed: u32, layer: u32, pos: u32, expert: u32) -> f32 {
  var h = pcg(pcg(pcg(pcg(seed) ^ layer) ^ pos) ^ expert);
  var sum = 0u;
  for (var i = 0u; i < 12u; i++) {
    h = pcg(h);
    sum += h >> 12u;
  }
  return f32(i32(sum) - 6291456) / 1048576.0; // (sum − 6·2²⁰) / 2²⁰
}

// z = (logit + bias + noise) · inv_temp of expert e for the token at absolute position pos.
fn what_if_z(logit: f32, e: u32, pos: u32) -> f32 {
  var z = logit;
  if (P.has_bias != 0u) { z += aux[e]; }
  if (P.noise_std != 0.0) { z += P.noise_std * noise(P.noise_seed, P.layer, pos, e); }
  return z * P.inv_temp;
}

// NaN or ±Inf, read from the bits: WGSL implementations may assume floats are finite and fold comparisons away.
fn not_finite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}
