// Next-token choice from one row of logits, entirely on the GPU, in one workgroup:
//   greedy: argmax, ties to the lowest index;
//   sampled: softmax(logits / T), restricted to the top-p nucleus, renormalised, drawn with a uniform u.
// Definitions (src/reference/sampling.ts implements the same ones on the CPU, in float64):
//   weight w_i = exp((l_i − m) / T), m = max logit, Z = Σ w_i; p_i = w_i / Z.
//   Nucleus: order tokens by (logit descending, index ascending); keep the shortest prefix whose mass reaches
//   top_p · Z (top_p >= 1 keeps everything). Equivalently: every token whose logit is above the threshold logit τ,
//   plus the lowest-index tokens tied at τ, as many as the prefix needs.
//   Draw: K = kept mass, goal = u · K; walk the kept tokens in index order and take the first whose running
//   mass exceeds goal. (Index order, not probability order: no sort needed, same distribution.)
//   u = (pcg(pcg(seed) + step) >> 8) / 2^24, exactly representable in f32; `samplingUniform` in
//   src/engine/kernels/sampling.ts is the same function. u_override >= 0 replaces it (replaying a draw).
// Passes over the vocabulary (all reads strided by WORKGROUP, so coalesced, except the walk's first level):
//   1. argmax and m; 2. Z;
//   3. top_p < 1: radix select of τ on the order-preserving 32-bit key of the logit, 4 bits per pass (8 passes):
//      each pass sums the weights of the tokens matching the digits fixed so far into 16 bins by the next digit,
//      then fixes the largest digit whose bins, with the mass above them, still reach top_p · Z;
//   4. the draw walks the vocabulary hierarchically: split the current range into WORKGROUP contiguous parts, sum
//      each part's kept mass (ties at τ counted in index order via a scan of tie counts), scan the sums, and step
//      into the part where the running mass passes goal; repeat until one token is left (3 levels for 152k).
// Outputs: result[0] = token id; result[1] = f32 bits of p_token (softmax at temperature T, before the nucleus
// cut); result[2] = f32 bits of u. If append_at != 0xffffffff, tokens[append_at] = token, so the next step's
// embedding can read it from the GPU. Logits must not be NaN (the token id stays in range regardless).

struct Params {
  vocab: u32,           // V
  logits_offset: u32,   // element index of the row's first logit
  greedy: u32,          // 1: argmax; 0: sample
  seed: u32,
  step: u32,            // counter mixed with the seed (e.g. the position)
  append_at: u32,       // index in tokens to write, or 0xffffffff
  inv_temperature: f32, // 1 / T (the host passes 1 for greedy, which sets p_token's temperature)
  top_p: f32,           // nucleus mass; >= 1 keeps every token
  u_override: f32,      // >= 0: use as u; < 0: hash seed and step
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;        // [>= logits_offset + V]
@group(0) @binding(2) var<storage, read_write> result: array<u32>;  // [3]: token, p_token bits, u bits
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;  // running token ids; [append_at] written

override WORKGROUP: u32 = 256u; // a power of two >= 64; the host picks the largest the device allows (samplingWorkgroup)
const NONE: u32 = 0xffffffffu;

struct Walk {
  start: u32,       // first token of the range still in play
  len: u32,         // its length
  ties_before: u32, // tokens tied at τ with an index below start
  goal: f32,      // mass still to pass inside the range; < 0 before the first level sets it
}

var<workgroup> red_f: array<f32, WORKGROUP>;
var<workgroup> red_u: array<u32, WORKGROUP>;
var<workgroup> bins_sh: array<f32, 8u * WORKGROUP>; // 8 of the 16 bins per thread at a time
var<workgroup> totals: array<f32, 16>;
var<workgroup> walk: Walk;
var<workgroup> first_hit: atomic<u32>;  // lowest part whose running mass passes goal
var<workgroup> last_mass: atomic<u32>;  // 1 + highest part with mass (0: none)

// Order-preserving map f32 → u32: a < b ⇔ key(a) < key(b) (for non-NaN values; -0 sorts just below +0).
fn order_key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn key_value(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

// PCG hash (O'Neill's PCG output on one LCG step), as in "Hash Functions for GPU Rendering" (Jarzynski, Olano).
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn draw_uniform() -> f32 {
  if (params.u_override >= 0.0) {
    return params.u_override;
  }
  return f32(pcg(pcg(params.seed) + params.step) >> 8u) * (1.0 / 16777216.0);
}

fn weight(x: f32, m: f32) -> f32 {
  return exp((x - m) * params.inv_temperature);
}

fn sum_all(v: f32, lid: u32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_f[lid] += red_f[lid + s]; }
    workgroupBarrier();
  }
  let total = red_f[0];
  workgroupBarrier();
  return total;
}

// Inclusive Hillis–Steele scan over the workgroup: (exclusive, inclusive, total). The exclusive value of thread
// t + 1 is exactly the inclusive value of thread t.
fn scan(v: f32, lid: u32) -> vec3<f32> {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = 1u; s < WORKGROUP; s <<= 1u) {
    var add = 0.0;
    if (lid >= s) { add = red_f[lid - s]; }
    workgroupBarrier();
    red_f[lid] += add;
    workgroupBarrier();
  }
  let incl = red_f[lid];
  var excl = 0.0;
  if (lid > 0u) { excl = red_f[lid - 1u]; }
  let total = red_f[WORKGROUP - 1u];
  workgroupBarrier();
  return vec3<f32>(excl, incl, total);
}

// Sums every thread's 16 bins into totals[16], 8 bins at a time.
fn reduce_bins(b: array<f32, 16>, lid: u32) {
  let per = WORKGROUP / 8u; // threads per bin in the second stage, each summing 8 entries
  for (var half = 0u; half < 2u; half++) {
    for (var j = 0u; j < 8u; j++) {
      bins_sh[j * WORKGROUP + lid] = b[half * 8u + j];
    }
    workgroupBarrier();
    let bin = lid / per;
    let seg = lid % per;
    var s = 0.0;
    for (var k = 0u; k < 8u; k++) {
      s += bins_sh[bin * WORKGROUP + seg * 8u + k];
    }
    red_f[lid] = s;
    workgroupBarrier();
    if (lid < 8u) {
      var t = 0.0;
      for (var k = 0u; k < per; k++) {
        t += red_f[lid * per + k];
      }
      totals[half * 8u + lid] = t;
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(local_invocation_index) lid: u32) {
  let V = params.vocab;
  let off = params.logits_offset;

  // 1. argmax (ties to the lowest index) and the max logit m.
  var best_v = 0.0;
  var best_i = NONE;
  for (var i = lid; i < V; i += WORKGROUP) {
    let x = logits[off + i];
    if (x == x && (best_i == NONE || x > best_v)) { // indices ascend per thread: strict > keeps the lowest
      best_v = x;
      best_i = i;
    }
  }
  red_f[lid] = best_v;
  red_u[lid] = best_i;
  workgroupBarrier();
  for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let oi = red_u[lid + s];
      let ov = red_f[lid + s];
      let mi = red_u[lid];
      if (oi != NONE && (mi == NONE || ov > red_f[lid] || (ov == red_f[lid] && oi < mi))) {
        red_f[lid] = ov;
        red_u[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  let m = red_f[0];
  let argmax = select(red_u[0], 0u, red_u[0] == NONE);
  workgroupBarrier();

  // 2. Z.
  var z = 0.0;
  for (var i = lid; i < V; i += WORKGROUP) {
    z += weight(logits[off + i], m);
  }
  let z_total = sum_all(z, lid);

  let u = draw_uniform();
  var token = argmax;
  if (params.greedy == 0u) {
    // 3. The nucleus threshold: τ (a key) and how many tokens tied at τ are kept. Defaults keep everything.
    var tau = 0u;
    var n_ties = NONE;
    var w_tau = 0.0;
    if (params.top_p < 1.0) {
      let goal = params.top_p * z_total;
      var prefix = 0u;  // digits fixed so far
      var above = 0.0;  // mass of tokens whose key is above every key with this prefix
      for (var pass_i = 0u; pass_i < 8u; pass_i++) {
        let shift = 28u - 4u * pass_i;
        let fixed = select(0u, 0xffffffffu << (shift + 4u), pass_i > 0u);
        var b = array<f32, 16>(); // explicit: an uninitialised var in a loop was not re-zeroed on SwiftShader
        for (var i = lid; i < V; i += WORKGROUP) {
          let x = logits[off + i];
          let k = order_key(x);
          if ((k & fixed) == prefix) {
            b[(k >> shift) & 15u] += weight(x, m);
          }
        }
        reduce_bins(b, lid);
        // The largest digit whose bin, with everything above it, still reaches the goal (digit 0 if none does,
        // which only f32 rounding can cause).
        var digit = 0u;
        var acc = above;
        for (var dd = 15u; dd > 0u; dd--) {
          if (acc + totals[dd] >= goal) {
            digit = dd;
            break;
          }
          acc += totals[dd];
        }
        prefix |= digit << shift;
        above = acc;
        workgroupBarrier(); // totals is rewritten by the next pass
      }
      tau = prefix;
      w_tau = weight(key_value(tau), m);
      // The fewest ties that bring the kept mass to the goal (at least one: τ's own token).
      n_ties = max(1u, u32(ceil((goal - above) / w_tau)));
    }

    // 4. The draw.
    if (lid == 0u) {
      walk = Walk(0u, V, 0u, -1.0);
      atomicStore(&first_hit, NONE);
      atomicStore(&last_mass, 0u);
    }
    loop {
      let w = workgroupUniformLoad(&walk);
      if (w.len <= 1u) {
        token = w.start;
        break;
      }
      let sub = (w.len + WORKGROUP - 1u) / WORKGROUP;
      let a = w.start + min(lid * sub, w.len);
      let e = w.start + min(lid * sub + sub, w.len);
      var above_mass = 0.0;
      var ties = 0u;
      for (var i = a; i < e; i++) {
        let x = logits[off + i];
        let k = order_key(x);
        if (k > tau) {
          above_mass += weight(x, m);
        } else if (k == tau) {
          ties += 1u;
        }
      }
      let tie_scan = scan(f32(ties), lid); // counts are exact in f32 below 2^24
      let rank0 = w.ties_before + u32(tie_scan.x);
      var kept_ties = 0u;
      if (n_ties > rank0) {
        kept_ties = min(n_ties - rank0, ties);
      }
      let mass = above_mass + f32(kept_ties) * w_tau;
      let ms = scan(mass, lid);
      let goal = select(w.goal, u * ms.z, w.goal < 0.0);
      if (mass > 0.0) {
        if (ms.y > goal) {
          atomicMin(&first_hit, lid);
        }
        atomicMax(&last_mass, lid + 1u);
      }
      workgroupBarrier();
      // Rounding can leave goal at or past the total: take the last part with mass then.
      var chosen = atomicLoad(&first_hit);
      if (chosen == NONE) {
        chosen = max(atomicLoad(&last_mass), 1u) - 1u;
      }
      workgroupBarrier(); // everyone has read the atomics before they are reset
      if (lid == chosen) {
        walk = Walk(a, e - a, rank0, goal - ms.x);
      }
      if (lid == 0u) {
        atomicStore(&first_hit, NONE);
        atomicStore(&last_mass, 0u);
      }
    }
  }

  if (lid == 0u) {
    result[0] = token;
    result[1] = bitcast<u32>(weight(logits[off + token], m) / z_total);
    result[2] = bitcast<u32>(u);
    if (params.append_at != NONE) {
      tokens[params.append_at] = token;
    }
  }
}
