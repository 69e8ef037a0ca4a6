// Rotary embedding frequencies and scaling, as transformers' rope init functions compute them
// (transformers/modeling_rope_utils.py: default, linear, dynamic, yarn, llama3).
//
// ropeTables() returns the inv_freq table the rope kernel multiplies by the position, and the attention factor that
// multiplies cos and sin. transformers forms inv_freq with float32 tensor operations (a Python float meeting an f32
// tensor is rounded to f32 first; `scalar / tensor` is `tensor.reciprocal() * scalar`), while the YaRN correction
// range, the dynamic-NTK base at init and every attention factor are Python floats (float64). Each step below rounds
// where torch rounds, so tables match transformers' to the last bit or within an ulp where f32 pow differs.
// The float64 counterpart (no rounding anywhere) is src/reference/rope-scaling.ts.

/** RoPE scaling of a model (config.json `rope_parameters` / `rope_scaling`), normalised. */
export type RopeScaling =
  | { type: 'default' }
  /** Positions divided by `factor` (inv_freq / factor). */
  | { type: 'linear'; factor: number }
  /** Dynamic NTK: base grows with the sequence once it passes maxPositions (config max_position_embeddings). */
  | { type: 'dynamic'; factor: number; maxPositions: number }
  | {
      type: 'yarn';
      factor: number;
      originalMaxPositions: number;
      betaFast: number;
      betaSlow: number;
      /** Explicit attention_factor, or null to derive it from factor, mscale and mscale_all_dim. */
      attentionFactor: number | null;
      /** null where the config has none (or 0: transformers tests truthiness). */
      mscale: number | null;
      mscaleAllDim: number | null;
      /** Round the correction range outward to whole dimensions (default true; gpt-oss false). */
      truncate: boolean;
    }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export type RopeType = RopeScaling['type'];
export const ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'dynamic', 'yarn', 'llama3'];

export interface RopeTables {
  /** [dim / 2] f32: angle of pair i at position p = f32(p · invFreq[i]). */
  invFreq: Float32Array;
  /** Multiplies cos and sin (transformers' attention_scaling); 1 except for YaRN. */
  attentionFactor: number;
}

const f = Math.fround;

/** 1 / theta^(2i/dim) in f32: `1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))`. */
export function ropeInvFreq(dim: number, theta: number): Float32Array {
  return Float32Array.from(ropePowers(dim, theta), (p) => f(1 / p));
}

/** base^(2i/dim) in f32 (the exponent an f32 division, the power taken in f32). */
function ropePowers(dim: number, theta: number): Float32Array {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) throw new Error(`rope: dimension must be even, got ${dim}`);
  if (!(theta > 0)) throw new Error(`rope: theta must be > 0, got ${theta}`);
  const base = f(theta);
  return Float32Array.from({ length: dim / 2 }, (_, i) => f(Math.pow(base, f((2 * i) / dim))));
}

/** YaRN's get_mscale: 0.1 · mscale · ln(scale) + 1 above scale 1. */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/** The YaRN attention factor (float64, as transformers derives it). */
export function yarnAttentionFactor(s: Extract<RopeScaling, { type: 'yarn' }>): number {
  if (s.attentionFactor !== null) return s.attentionFactor;
  if (s.mscale && s.mscaleAllDim) return yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim);
  return yarnMscale(s.factor);
}

/**
 * DeepSeek's softmax-scale multiplier (yarn_apply_mscale): mscale(factor, mscale_all_dim)² for any scaled rope whose
 * config sets mscale_all_dim; 1 otherwise.
 */
export function deepseekSoftmaxMultiplier(s: RopeScaling): number {
  if (s.type !== 'yarn' || !s.mscaleAllDim) return 1;
  const m = yarnMscale(s.factor, s.mscaleAllDim);
  return m * m;
}

/**
 * inv_freq and attention factor for `dim` rotary dimensions. `seqLen` (dynamic only) is the length the current
 * forward reaches, max position + 1; below maxPositions the table is the plain one.
 */
export function ropeTables(scaling: RopeScaling, dim: number, theta: number, seqLen = 0): RopeTables {
  switch (scaling.type) {
    case 'default':
      return { invFreq: ropeInvFreq(dim, theta), attentionFactor: 1 };
    case 'linear': {
      const factor = f(scaling.factor);
      return { invFreq: ropeInvFreq(dim, theta).map((v) => f(v / factor)), attentionFactor: 1 };
    }
    case 'dynamic':
      return { invFreq: dynamicInvFreq(scaling, dim, theta, seqLen), attentionFactor: 1 };
    case 'yarn':
      return { invFreq: yarnInvFreq(scaling, dim, theta), attentionFactor: yarnAttentionFactor(scaling) };
    case 'llama3':
      return { invFreq: llama3InvFreq(scaling, dim, theta), attentionFactor: 1 };
  }
}

/**
 * base' = base · (factor · L / max − (factor − 1))^(dim / (dim − 2)), L = max(seqLen, max). transformers computes it
 * from the int64 seq_len tensor, so in f32 (at L = max the bracket is exactly 1 and base' = base).
 */
function dynamicInvFreq(s: Extract<RopeScaling, { type: 'dynamic' }>, dim: number, theta: number, seqLen: number): Float32Array {
  const L = Math.max(seqLen, s.maxPositions);
  const ratio = f(f(f(s.factor) * L) / f(s.maxPositions));
  const bracket = f(ratio - f(s.factor - 1));
  const base = f(f(theta) * f(Math.pow(bracket, dim / (dim - 2)))); // tensor ** Python float: the exponent stays float64
  return ropeInvFreq(dim, base);
}

/**
 * YaRN: each pair blends the interpolated (÷ factor) and extrapolated (plain) frequency by a linear ramp over the
 * correction range [low, high] of dimensions, found from the rotations beta_fast and beta_slow complete within the
 * original context.
 */
function yarnInvFreq(s: Extract<RopeScaling, { type: 'yarn' }>, dim: number, theta: number): Float32Array {
  const correctionDim = (rotations: number) =>
    (dim * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(s.betaFast);
  let high = correctionDim(s.betaSlow);
  if (s.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const lowF = f(low);
  const span = f(high - low);
  const factor = f(s.factor);
  return Float32Array.from(ropePowers(dim, theta), (pos, i) => {
    const extrapolation = f(1 / pos);
    const interpolation = f(1 / f(factor * pos));
    const ramp = Math.min(1, Math.max(0, f(f(i - lowF) / span)));
    const keep = f(1 - ramp); // inv_freq_extrapolation_factor
    return f(f(interpolation * f(1 - keep)) + f(extrapolation * keep));
  });
}

/**
 * Llama 3.1: wavelengths above original/lowFreqFactor are divided by factor, those below original/highFreqFactor kept,
 * those between blended by smooth = (original / wavelength − low) / (high − low).
 */
function llama3InvFreq(s: Extract<RopeScaling, { type: 'llama3' }>, dim: number, theta: number): Float32Array {
  const lowWavelen = f(s.originalMaxPositions / s.lowFreqFactor);
  const highWavelen = f(s.originalMaxPositions / s.highFreqFactor);
  const factor = f(s.factor);
  const twoPi = f(2 * Math.PI);
  return ropeInvFreq(dim, theta).map((inv) => {
    const wavelen = f(f(1 / inv) * twoPi);
    const scaled = wavelen > lowWavelen ? f(inv / factor) : inv;
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const smooth = f(f(f(f(1 / wavelen) * f(s.originalMaxPositions)) - f(s.lowFreqFactor)) / f(s.highFreqFactor - s.lowFreqFactor));
    return f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
  });
}
