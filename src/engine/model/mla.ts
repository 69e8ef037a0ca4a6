// DeepSeek-V2/V3 multi-head latent attention for one layer, on the compressed cache (absorbed form):
//   q      = q_proj(x)                or q_b_proj(q_a_layernorm(q_a_proj(x)))   [T, nH·(nope + P)]
//   kv_a   = kv_a_proj_with_mqa(x)                                               [T, R + P]
//   c      = kv_a_layernorm(kv_a[:, :R]);  k_rope = RoPE(kv_a[:, R:]);  q_rope = RoPE(q[h, nope:])
//   cache  ← [c | k_rope] per position (R + P floats, not nH·(nope + P + V))
//   q_lat  = W_k,hᵀ q_nope per head;  ctx = attention in latent space;  out_h = W_v,h ctx_h;  o_proj(out)
// RoPE runs on the rope parts in place (heads a stride apart; V2 and V3 by default pair (2i, 2i + 1)), with the
// YaRN attention factor on cos/sin; the softmax scale carries YaRN's mscale² (MoeConfig.attentionScale).
import type { Gpu } from '../gpu';
import type { MoeConfig } from '../../model/config';
import type { TensorFormat } from '../../model/dtypes';
import { storageBuffer } from '../kernels/common';
import type { RmsNormBinding, RmsNormKernel } from '../kernels/rmsnorm';
import type { LinearBinding, LinearKernel } from '../kernels/linear';
import { GEMV_MAX_ROWS } from '../kernels/gemv';
import type { ResidualBinding, ResidualKernel } from '../kernels/residual';
import type { RopeBinding, RopeKernel } from '../kernels/rope';
import { MlaAbsorbKernel, type MlaAbsorbBinding } from '../kernels/mla-absorb';
import { MlaAttentionKernel, createMlaCache, type MlaAttentionBinding } from '../kernels/mla-attention';
import type { ProbeTarget } from '../kernels/split-attention';

/** transformers builds q_a_layernorm and kv_a_layernorm with the RMSNorm default eps, not rms_norm_eps. */
const MLA_NORM_EPS = 1e-6;

export interface MlaKernels {
  norm: RmsNormKernel;
  linear: LinearKernel;
  rope: RopeKernel;
  residual: ResidualKernel;
  absorb: MlaAbsorbKernel;
  attention: MlaAttentionKernel;
}

export function mlaKernels(gpu: Gpu, c: MoeConfig, shared: Omit<MlaKernels, 'absorb' | 'attention'>): MlaKernels {
  const m = c.mla!;
  return { ...shared, absorb: new MlaAbsorbKernel(gpu, c.weightDtype), attention: new MlaAttentionKernel(gpu, m.kvLoraRank + m.qkRopeHeadDim) };
}

/** Step scratch shared by every MLA layer (layers run one after another); T = most tokens per step. */
export class MlaScratch {
  readonly qA: GPUBuffer | null; // [T, q_lora_rank] q_a_proj output
  readonly qANormed: GPUBuffer | null; // [T, q_lora_rank]
  readonly kvA: GPUBuffer; // [T, R + P] kv_a_proj_with_mqa output; its rope part rotated in place
  readonly latent: GPUBuffer; // [T, R + P] kv_a_layernorm output in columns [0, R)
  readonly qLat: GPUBuffer; // [T, nH, R] absorbed queries
  readonly ctx: GPUBuffer; // [T, nH, R] attention output in latent space
  readonly values: GPUBuffer; // [T, nH·V] per-head values, o_proj's input

  constructor(gpu: Gpu, c: MoeConfig, T: number) {
    const m = c.mla!;
    const buf = (name: string, floats: number) => storageBuffer(gpu, `Mla.${name}`, T * floats * 4);
    const W = m.kvLoraRank + m.qkRopeHeadDim;
    this.qA = m.qLoraRank === null ? null : buf('qA', m.qLoraRank);
    this.qANormed = m.qLoraRank === null ? null : buf('qANormed', m.qLoraRank);
    this.kvA = buf('kvA', W);
    this.latent = buf('latent', W);
    this.qLat = buf('qLat', c.numHeads * m.kvLoraRank);
    this.ctx = buf('ctx', c.numHeads * m.kvLoraRank);
    this.values = buf('values', c.numHeads * m.vHeadDim);
  }

  get buffers(): GPUBuffer[] {
    return [this.qA, this.qANormed, this.kvA, this.latent, this.qLat, this.ctx, this.values].filter((b): b is GPUBuffer => b !== null);
  }
}

export class MlaAttention {
  readonly kind = 'mla';
  /** [maxSeq, kv_lora_rank + qk_rope_head_dim] f32. */
  readonly cache: GPUBuffer;
  private readonly q: { a: LinearBinding; norm: RmsNormBinding; b: LinearBinding } | LinearBinding;
  private readonly kvA: LinearBinding;
  private readonly kvNorm: RmsNormBinding;
  private readonly rope: RopeBinding;
  private readonly absorb: MlaAbsorbBinding;
  private readonly attention: MlaAttentionBinding;
  private readonly o: LinearBinding;
  /** Up to GEMV_MAX_ROWS tokens: x += residual scale · o-projection (the residual add fused). */
  private readonly oResidual: LinearBinding;

  /**
   * x: [T, H] the normed input; q: [T, nH·(nope + P)] scratch; out: [T, H] (o_proj's output); residual: [T, H] the
   * residual stream and its multiplier; invFreq: [P / 2] f32; weights.get(role) gives the layer's tensor of that
   * load-plan role, weights.format(role) its format (GGUF files mix them; the projections take any, norms and kv_b the
   * model's dense dtype: weights.dense checks that).
   */
  constructor(
    gpu: Gpu,
    private readonly k: MlaKernels,
    private readonly c: MoeConfig,
    label: string,
    io: { x: GPUBuffer; q: GPUBuffer; out: GPUBuffer; residual: { x: GPUBuffer; scale: number }; invFreq: GPUBuffer; ropeScaling: number },
    scratch: MlaScratch,
    weights: { get: (role: string) => GPUBuffer; dense: (role: string) => GPUBuffer; format: (role: string) => TensorFormat },
    shape: { maxTokens: number; maxSeq: number },
  ) {
    const m = c.mla!;
    const H = c.hiddenSize, nH = c.numHeads, R = m.kvLoraRank, P = m.qkRopeHeadDim, Q = m.qkNopeHeadDim + P, W = R + P;
    const linear = (name: string, x: GPUBuffer, y: GPUBuffer, K: number, N: number) =>
      k.linear.bind(`${label}.${name}`, x, weights.get(name), y, { K, N, maxRows: shape.maxTokens, weightDtype: weights.format(name) });
    if (m.qLoraRank === null) {
      this.q = linear('q', io.x, io.q, H, nH * Q);
    } else {
      this.q = {
        a: linear('qA', io.x, scratch.qA!, H, m.qLoraRank),
        norm: k.norm.bind(`${label}.qANorm`, scratch.qA!, weights.dense('qANorm'), scratch.qANormed!),
        b: linear('qB', scratch.qANormed!, io.q, m.qLoraRank, nH * Q),
      };
    }
    this.kvA = linear('kvA', io.x, scratch.kvA, H, W);
    this.kvNorm = k.norm.bind(`${label}.kvANorm`, scratch.kvA, weights.dense('kvANorm'), scratch.latent);
    this.rope = k.rope.bind(`${label}.rope`, io.invFreq, io.q, scratch.kvA, {
      qHeads: nH, kHeads: 1, headDim: P,
      qStride: nH * Q, qOffset: m.qkNopeHeadDim, qHeadStride: Q,
      kStride: W, kOffset: R,
      scaling: io.ropeScaling, interleaved: m.ropeInterleave,
    });
    const heads = { heads: nH, rank: R, nope: m.qkNopeHeadDim, rope: P };
    this.absorb = k.absorb.bind(`${label}.kvB`, { q: io.q, kvB: weights.dense('kvB'), qLat: scratch.qLat, ctx: scratch.ctx, out: scratch.values }, { ...heads, vDim: m.vHeadDim });
    this.cache = createMlaCache(gpu, label, { maxSeq: shape.maxSeq, rank: R, rope: P });
    this.attention = k.attention.bind(
      `${label}.mlaAttention`,
      { latent: scratch.latent, kvA: scratch.kvA, qLat: scratch.qLat, q: io.q, cache: this.cache, ctx: scratch.ctx },
      { ...heads, maxSeq: shape.maxSeq, scale: c.attentionScale },
    );
    this.o = linear('o', scratch.values, io.out, nH * m.vHeadDim, H);
    this.oResidual = k.linear.bind(`${label}.oResidual`, scratch.values, weights.get('o'), io.residual.x, {
      K: nH * m.vHeadDim, N: H, maxRows: Math.min(shape.maxTokens, GEMV_MAX_ROWS), weightDtype: weights.format('o'), accumulate: true, alpha: io.residual.scale,
    });
  }

  /**
   * Records T tokens' attention and adds its output to the residual stream: by the o-projection itself (fused, up
   * to GEMV_MAX_ROWS tokens), or through `residual`.
   */
  encode(pass: GPUComputePassEncoder, T: number, startPos: number, residual: ResidualBinding, fused: boolean): void {
    const { k, c } = this;
    const m = c.mla!;
    if ('a' in this.q) {
      k.linear.encode(pass, this.q.a, T);
      k.norm.setShape(this.q.norm, { rows: T, cols: m.qLoraRank!, eps: MLA_NORM_EPS });
      k.norm.encode(pass, this.q.norm, T);
      k.linear.encode(pass, this.q.b, T);
    } else {
      k.linear.encode(pass, this.q, T);
    }
    k.linear.encode(pass, this.kvA, T);
    k.norm.setShape(this.kvNorm, { rows: T, cols: m.kvLoraRank, eps: MLA_NORM_EPS, stride: m.kvLoraRank + m.qkRopeHeadDim });
    k.norm.encode(pass, this.kvNorm, T);
    k.rope.setShape(this.rope, { tokens: T, startPos });
    k.rope.encode(pass, this.rope, T);
    k.absorb.setTokens(this.absorb, T);
    k.absorb.encodeAbsorb(pass, this.absorb, T);
    k.attention.setShape(this.attention, { tokens: T, startPos });
    k.attention.encode(pass, this.attention, T);
    k.absorb.encodeExpand(pass, this.absorb, T);
    if (fused && T <= GEMV_MAX_ROWS) {
      k.linear.encode(pass, this.oResidual, T);
    } else {
      k.linear.encode(pass, this.o, T);
      k.residual.encode(pass, residual, T * c.hiddenSize);
    }
  }

  /** The attention probe handle of this layer's latent attention. */
  probeTarget(): ProbeTarget {
    return this.k.attention.probeTarget(this.attention);
  }
}
