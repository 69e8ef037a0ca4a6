// The whole decoder on the GPU: embedding → layers (RMSNorm, attention with RoPE and a KV cache, MoE or dense FFN,
// residuals) → final norm → LM head. Every buffer and bind group is made here, at load time; a step only writes
// uniforms and records dispatches (encodeStep), all layers in one compute pass unless the profiler splits them.
//
// Family details handled here: q/k/v biases (Qwen2-MoE), q/k RMSNorm over the whole projection (OLMoE) or per head
// (Qwen3-MoE), Granite-MoE's multipliers (embedding ×, residual branches ×, attention scale, logits ÷ — the last folded
// into the final norm's weight), Mixtral's sliding window, tied LM heads, RoPE scaling (src/model/rope.ts; dynamic
// NTK tables rewritten per step), gpt-oss's per-layer windows, attention sinks, o_proj bias and router bias
// (gptOssLayer). DeepSeek's multi-head latent attention lives in MlaAttention (./mla.ts), shared experts and expert
// biases in MoeLayer.
import type { Gpu } from '../gpu';
import type { MoeConfig } from '../../model/config';
import type { TensorFormat } from '../../model/dtypes';
import { storageBuffer } from '../kernels/common';
import { EmbeddingKernel, type EmbeddingBinding } from '../kernels/embedding';
import { RmsNormKernel, type RmsNormBinding } from '../kernels/rmsnorm';
import { LinearKernel, type LinearBinding } from '../kernels/linear';
import { BiasAddKernel, type BiasAddBinding } from '../kernels/bias-add';
import { RopeKernel, type RopeBinding } from '../kernels/rope';
import { ropeTables } from '../../model/rope';
import { AttentionKernel, createKvCache, type AttentionBinding } from '../kernels/attention';
import { ResidualKernel, type ResidualBinding } from '../kernels/residual';
import { SwigluKernel, type SwigluBinding } from '../kernels/swiglu';
import { MoeLayer, moeScratchShape } from '../routing/moe-layer';
import { MoeScratch } from '../routing/scratch';
import type { RoutingStats } from '../routing/stats';
import type { RoutingPolicy } from '../session-api';
import type { Profiler } from '../profiler';
import type { UploadedWeights } from './weights';
import { MlaAttention, MlaScratch, mlaKernels, type MlaKernels } from './mla';

export interface DecoderOptions {
  /** Most tokens one step processes (prefill is chunked to this). */
  maxTokensPerStep: number;
  /** Positions the KV cache holds. */
  maxSeq: number;
}

/** Grouped-query attention with RoPE over a per-head KV cache (every family but DeepSeek). */
interface StandardAttention {
  kind: 'standard';
  q: LinearBinding;
  k: LinearBinding;
  v: LinearBinding;
  biases: BiasAddBinding[];
  qNorm: RmsNormBinding | null;
  kNorm: RmsNormBinding | null;
  rope: RopeBinding;
  attention: AttentionBinding;
  o: LinearBinding;
  /** gpt-oss o_proj bias, added to the o-projection's output. */
  oBias: BiasAddBinding | null;
}

interface LayerBindings {
  inputNorm: RmsNormBinding;
  attn: StandardAttention | MlaAttention;
  attnResidual: ResidualBinding;
  postNorm: RmsNormBinding;
  moe: MoeLayer | null;
  dense: { gateUp: LinearBinding; swiglu: SwigluBinding; down: LinearBinding } | null;
  ffnResidual: ResidualBinding;
}

/** Activation buffers, all f32 unless noted; T = maxTokensPerStep. */
interface Activations {
  ids: GPUBuffer; // u32 [maxSeq] token id at each position (sampling appends here)
  x: GPUBuffer; // [T, H] residual stream
  normed: GPUBuffer; // [T, H] normalised input of attention / FFN / LM head
  q: GPUBuffer; // [T, nH·d]
  k: GPUBuffer; // [T, nKV·d]
  v: GPUBuffer; // [T, nKV·d]
  qNormed: GPUBuffer | null; // [T, nH·d] q after its RMSNorm (families with q/k norms)
  kNormed: GPUBuffer | null; // [T, nKV·d]
  attn: GPUBuffer; // [T, nH·d]
  branch: GPUBuffer; // [T, H] output of attention's o-projection, then of the FFN
  mlpUp: GPUBuffer; // [T, 2I] dense layers' gate/up
  mlpAct: GPUBuffer; // [T, I]
  logits: GPUBuffer; // [T, V]
}

/**
 * A layer's attention window (slidingWindow where the layer slides: gpt-oss alternates, other families slide on every
 * layer or none) and gpt-oss's per-layer tensors: sink logits [nH] (f32) and the o_proj bias [H].
 */
function gptOssLayer(
  c: MoeConfig, layer: number, weight: (role: 'attnSinks' | 'oBias') => GPUBuffer | null,
): { window: number; sinks: GPUBuffer | null; oBias: GPUBuffer | null } {
  const slides = c.slidingLayers ? c.slidingLayers[layer] : true;
  const need = (role: 'attnSinks' | 'oBias', wanted: boolean | undefined) => {
    const b = wanted ? weight(role) : null;
    if (wanted && !b) throw new Error(`model weights: layer ${layer} has no ${role} in the load plan`);
    return b;
  };
  return {
    window: slides ? (c.slidingWindow ?? 0) : 0,
    sinks: need('attnSinks', c.attentionSinks),
    oBias: need('oBias', c.outputBias),
  };
}

/** How a layer reads its weights: buffers by plan entry name, and each entry's format. */
interface LayerWeights {
  w: (name: string) => GPUBuffer;
  has: (name: string) => boolean;
  fmt: (name: string) => TensorFormat;
  /** The buffer of a vector the small kernels read (norms, biases): must be in the model's dense dtype. */
  denseW: (name: string) => GPUBuffer;
}

export class Decoder {
  readonly act: Activations;
  readonly moeLayers: MoeLayer[] = [];
  private readonly layers: LayerBindings[] = [];
  private readonly embedding: EmbeddingBinding;
  private readonly finalNorm: RmsNormBinding;
  private readonly lmHead: LinearBinding;
  private readonly kernels;
  private readonly kvCaches: GPUBuffer[] = [];
  private readonly scratch: MoeScratch | null;
  private readonly mlaScratch: MlaScratch | null;
  private readonly invFreq: GPUBuffer;
  /** Rotary dimensions: headDim, or DeepSeek's qk_rope_head_dim. */
  private readonly ropeDim: number;
  /** Sequence length the dynamic-NTK table in invFreq was computed for (the plain table: maxPositions). */
  private ropeSeqLen = 0;

  constructor(
    private readonly gpu: Gpu,
    readonly config: MoeConfig,
    weights: UploadedWeights,
    stats: RoutingStats,
    readonly options: DecoderOptions,
  ) {
    const c = config;
    const T = options.maxTokensPerStep;
    const H = c.hiddenSize;
    const d = c.headDim;
    const qDim = c.numHeads * d;
    const kvDim = c.mla ? 0 : c.numKvHeads * d; // MLA keeps no per-head K/V
    const denseI = c.intermediateSize;
    const dtype = c.weightDtype;
    const w = (name: string): GPUBuffer => {
      const b = weights.buffers.get(name);
      if (!b) throw new Error(`model weights: no tensor for "${name}" in the load plan`);
      return b;
    };
    const has = (name: string) => weights.buffers.has(name);
    // Each entry keeps its checkpoint format (GGUF files mix them); vectors the small kernels read must be dense.
    const fmt = (name: string): TensorFormat => weights.formats.get(name) ?? dtype;
    const denseW = (name: string): GPUBuffer => {
      if (fmt(name) !== dtype) throw new Error(`model weights: "${name}" is ${fmt(name)}; norms and biases must be ${dtype} like the model`);
      return w(name);
    };

    this.kernels = {
      embedding: new EmbeddingKernel(gpu, fmt('embed')),
      norm: new RmsNormKernel(gpu, dtype),
      normF32: new RmsNormKernel(gpu, 'f32'),
      linear: new LinearKernel(gpu),
      bias: new BiasAddKernel(gpu, dtype),
      rope: new RopeKernel(gpu),
      attention: new AttentionKernel(gpu),
      residual: new ResidualKernel(gpu),
      swiglu: new SwigluKernel(gpu),
    };
    const k = this.kernels;
    const buf = (name: string, bytes: number) => storageBuffer(gpu, `Decoder.${name}`, bytes);
    this.act = {
      ids: buf('ids', options.maxSeq * 4),
      x: buf('x', T * H * 4),
      normed: buf('normed', T * H * 4),
      q: buf('q', T * qDim * 4),
      k: buf('k', T * kvDim * 4),
      v: buf('v', T * kvDim * 4),
      qNormed: c.qkNorm !== 'none' ? buf('qNormed', T * qDim * 4) : null,
      kNormed: c.qkNorm !== 'none' ? buf('kNormed', T * kvDim * 4) : null,
      attn: buf('attn', T * qDim * 4),
      branch: buf('branch', T * H * 4),
      mlpUp: buf('mlpUp', T * Math.max(1, 2 * denseI) * 4),
      mlpAct: buf('mlpAct', T * Math.max(1, denseI) * 4),
      logits: buf('logits', T * c.vocabSize * 4),
    };
    const a = this.act;
    this.ropeDim = c.mla ? c.mla.qkRopeHeadDim : d;
    this.invFreq = buf('ropeInvFreq', (this.ropeDim / 2) * 4);
    const rope = ropeTables(c.ropeScaling ?? { type: 'default' }, this.ropeDim, c.ropeTheta);
    gpu.device.queue.writeBuffer(this.invFreq, 0, rope.invFreq);

    this.embedding = k.embedding.bind('Decoder.embed', a.ids, w('embed'), a.x, { vocab: c.vocabSize, hidden: H });
    this.scratch = c.moeLayers.some(Boolean) ? new MoeScratch(gpu, moeScratchShape(c, { maxTokens: T })) : null;
    this.mlaScratch = c.mla ? new MlaScratch(gpu, c, T) : null;

    const linear = (label: string, x: GPUBuffer, name: string, y: GPUBuffer, K: number, N: number) =>
      k.linear.bind(label, x, w(name), y, { K, N, maxRows: T, weightDtype: fmt(name) });

    const mla: MlaKernels | null = c.mla ? mlaKernels(gpu, c, { norm: k.norm, linear: k.linear, rope: k.rope }) : null;
    for (let l = 0; l < c.numLayers; l++) {
      const p = `layers.${l}`;
      const label = `Layer${l}`;
      const attn = c.mla
        ? new MlaAttention(gpu, mla!, c, label, { x: a.normed, q: a.q, out: a.branch, invFreq: this.invFreq, ropeScaling: rope.attentionFactor },
          this.mlaScratch!, { get: (role) => w(`${p}.${role}`), dense: (role) => denseW(`${p}.${role}`), format: (role) => fmt(`${p}.${role}`) },
          { maxTokens: T, maxSeq: options.maxSeq })
        : this.standardAttention(l, { w, has, fmt, denseW }, rope.attentionFactor);
      this.kvCaches.push(...(attn.kind === 'mla' ? [attn.cache] : [attn.attention.buffers.kCache, attn.attention.buffers.vCache]));
      const isMoe = c.moeLayers[l];
      let moe: MoeLayer | null = null;
      let dense: LayerBindings['dense'] = null;
      if (isMoe) {
        const bank = (name: string) => {
          const b = weights.banks.get(name);
          if (!b) throw new Error(`model weights: no expert bank "${name}" in the load plan`);
          return b;
        };
        moe = new MoeLayer(gpu, {
          layer: l,
          config: c,
          stats,
          scratch: this.scratch!,
          weights: {
            router: w(`${p}.router`),
            routerBias: has(`${p}.routerBias`) ? w(`${p}.routerBias`) : null,
            routerFormat: fmt(`${p}.router`),
            correctionBias: has(`${p}.routerCorrectionBias`) ? w(`${p}.routerCorrectionBias`) : null,
            gateUp: bank(`${p}.expertsGateUp`),
            down: bank(`${p}.expertsDown`),
            gateUpBias: has(`${p}.expertsGateUpBias`) ? w(`${p}.expertsGateUpBias`) : null,
            downBias: has(`${p}.expertsDownBias`) ? w(`${p}.expertsDownBias`) : null,
            shared: c.sharedExpert
              ? {
                  gateUp: w(`${p}.sharedGateUp`),
                  down: w(`${p}.sharedDown`),
                  gate: has(`${p}.sharedGate`) ? w(`${p}.sharedGate`) : null,
                  formats: { gateUp: fmt(`${p}.sharedGateUp`), down: fmt(`${p}.sharedDown`) },
                }
              : null,
          },
        });
        this.moeLayers.push(moe);
      } else {
        dense = {
          gateUp: linear(`${label}.mlp.gateUp`, a.normed, `${p}.denseGateUp`, a.mlpUp, H, 2 * denseI),
          swiglu: k.swiglu.bind(`${label}.mlp.swiglu`, a.mlpUp, a.mlpAct),
          down: linear(`${label}.mlp.down`, a.mlpAct, `${p}.denseDown`, a.branch, denseI, H),
        };
      }
      this.layers.push({
        inputNorm: k.norm.bind(`${label}.inputNorm`, a.x, denseW(`${p}.inputNorm`), a.normed),
        attn,
        attnResidual: k.residual.bindInPlace(`${label}.attnResidual`, a.x, a.branch),
        postNorm: k.norm.bind(`${label}.postAttnNorm`, a.x, denseW(`${p}.postAttnNorm`), a.normed),
        moe,
        dense,
        ffnResidual: k.residual.bindInPlace(`${label}.ffnResidual`, a.x, a.branch),
      });
    }

    // Granite-MoE divides the logits by logits_scaling: folded into the final norm's weight (kept in f32).
    const finalNormF32 = weights.f32.get('finalNorm');
    if (!finalNormF32) throw new Error('model weights: the final norm must be kept as f32 (keepF32)');
    const scaled = finalNormF32.map((v) => v / c.logitsScaling);
    const finalNormWeight = buf('finalNormScaled', scaled.byteLength);
    gpu.device.queue.writeBuffer(finalNormWeight, 0, scaled);
    this.finalNorm = k.normF32.bind('Decoder.finalNorm', a.x, finalNormWeight, a.normed);
    const lmHeadName = c.tieWordEmbeddings || !has('lmHead') ? 'embed' : 'lmHead';
    this.lmHead = linear('Decoder.lmHead', a.normed, lmHeadName, a.logits, H, c.vocabSize);
  }

  /** Standard attention of layer l: q/k/v projections (biases, q/k norms), RoPE, the per-head KV cache, o. */
  private standardAttention(l: number, weights: LayerWeights, ropeScaling: number): StandardAttention {
    const { w, has, fmt, denseW } = weights;
    const { config: c, act: a, kernels: k, options, gpu } = this;
    const T = options.maxTokensPerStep, H = c.hiddenSize, d = c.headDim;
    const qDim = c.numHeads * d, kvDim = c.numKvHeads * d;
    const p = `layers.${l}`;
    const label = `Layer${l}`;
    const linear = (label: string, x: GPUBuffer, name: string, y: GPUBuffer, K: number, N: number) =>
      k.linear.bind(label, x, w(name), y, { K, N, maxRows: T, weightDtype: fmt(name) });
    const cache = createKvCache(gpu, `${label}.attention`, { maxSeq: options.maxSeq, kvHeads: c.numKvHeads, headDim: d });
    const biases: BiasAddBinding[] = [];
    for (const [role, target, cols] of [['qBias', a.q, qDim], ['kBias', a.k, kvDim], ['vBias', a.v, kvDim]] as const) {
      if (has(`${p}.${role}`)) biases.push(k.bias.bind(`${label}.${role}`, target, denseW(`${p}.${role}`), cols));
    }
    let qNorm: RmsNormBinding | null = null;
    let kNorm: RmsNormBinding | null = null;
    if (a.qNormed && a.kNormed) {
      qNorm = k.norm.bind(`${label}.qNorm`, a.q, denseW(`${p}.qNorm`), a.qNormed);
      kNorm = k.norm.bind(`${label}.kNorm`, a.k, denseW(`${p}.kNorm`), a.kNormed);
    }
    // Attention reads q/k after their norms when the family has them.
    const qIn = a.qNormed ?? a.q;
    const kIn = a.kNormed ?? a.k;
    // Sinks are kept in f32 (upload-weights); the o_proj bias is read by the bias kernel in the model's dtype.
    const extra = gptOssLayer(c, l, (role) => (!has(`${p}.${role}`) ? null : role === 'oBias' ? denseW(`${p}.${role}`) : w(`${p}.${role}`)));
    return {
      kind: 'standard',
      q: linear(`${label}.q`, a.normed, `${p}.q`, a.q, H, qDim),
      k: linear(`${label}.k`, a.normed, `${p}.k`, a.k, H, kvDim),
      v: linear(`${label}.v`, a.normed, `${p}.v`, a.v, H, kvDim),
      biases,
      qNorm,
      kNorm,
      rope: k.rope.bind(`${label}.rope`, this.invFreq, qIn, kIn, {
        qHeads: c.numHeads, kHeads: c.numKvHeads, headDim: d, scaling: ropeScaling,
      }),
      attention: k.attention.bind(
        `${label}.attention`,
        { q: qIn, kNew: kIn, vNew: a.v, kCache: cache.k, vCache: cache.v, out: a.attn, ...(extra.sinks ? { sinks: extra.sinks } : {}) },
        {
          heads: c.numHeads,
          kvHeads: c.numKvHeads,
          headDim: d,
          maxSeq: options.maxSeq,
          scale: c.attentionScale,
          window: extra.window,
        },
      ),
      o: linear(`${label}.o`, a.attn, `${p}.o`, a.branch, qDim, H),
      oBias: extra.oBias ? k.bias.bind(`${label}.oBias`, a.branch, extra.oBias, H) : null,
    };
  }

  private encodeStandardAttention(pass: GPUComputePassEncoder, A: StandardAttention, T: number, startPos: number): void {
    const c = this.config;
    const k = this.kernels;
    k.linear.encode(pass, A.q, T);
    k.linear.encode(pass, A.k, T);
    k.linear.encode(pass, A.v, T);
    for (const b of A.biases) {
      k.bias.setRows(b, T);
      k.bias.encode(pass, b, T);
    }
    if (A.qNorm && A.kNorm) {
      // OLMoE normalises the whole projection; Qwen3-MoE each head (rows = tokens · heads).
      const perHead = c.qkNorm === 'head';
      const qRows = perHead ? T * c.numHeads : T;
      const kRows = perHead ? T * c.numKvHeads : T;
      const qCols = perHead ? c.headDim : c.numHeads * c.headDim;
      const kCols = perHead ? c.headDim : c.numKvHeads * c.headDim;
      k.norm.setShape(A.qNorm, { rows: qRows, cols: qCols, eps: c.rmsNormEps });
      k.norm.encode(pass, A.qNorm, qRows);
      k.norm.setShape(A.kNorm, { rows: kRows, cols: kCols, eps: c.rmsNormEps });
      k.norm.encode(pass, A.kNorm, kRows);
    }
    k.rope.setShape(A.rope, { tokens: T, startPos });
    k.rope.encode(pass, A.rope, T);
    k.attention.setShape(A.attention, { tokens: T, startPos });
    k.attention.encode(pass, A.attention, T);
    k.linear.encode(pass, A.o, T);
    if (A.oBias) {
      k.bias.setRows(A.oBias, T);
      k.bias.encode(pass, A.oBias, T);
    }
  }

  setPolicy(policy: RoutingPolicy): void {
    for (const moe of this.moeLayers) moe.setPolicy(policy);
  }

  /** Bytes of the KV cache, activations and MoE scratch (weights are counted by the loader). */
  get runtimeBytes(): number {
    let total = 0;
    for (const b of [...Object.values(this.act), ...this.kvCaches]) total += b?.size ?? 0;
    if (this.scratch) for (const b of [this.scratch.records, this.scratch.probs, this.scratch.plan, this.scratch.h, this.scratch.y]) total += b.size;
    for (const b of this.mlaScratch?.buffers ?? []) total += b.size;
    return total;
  }

  get kvCacheBytes(): number {
    return this.kvCaches.reduce((n, b) => n + b.size, 0);
  }

  /**
   * Records one step: T tokens whose ids are already in act.ids[startPos, startPos + T), at positions
   * [startPos, startPos + T). Logits for the T rows land in act.logits. Writes uniforms through the queue, so the
   * caller submits before encoding another step.
   */
  encodeStep(encoder: GPUCommandEncoder, T: number, startPos: number, profiler?: Profiler): void {
    const c = this.config;
    const k = this.kernels;
    const H = c.hiddenSize;
    if (T < 1 || T > this.options.maxTokensPerStep) throw new RangeError(`step of ${T} tokens; at most ${this.options.maxTokensPerStep}`);
    if (startPos + T > this.options.maxSeq) {
      throw new RangeError(`positions up to ${startPos + T} run past the context of ${this.options.maxSeq} tokens`);
    }
    this.updateDynamicRope(startPos + T);
    const split = profiler?.enabled ?? false;
    let pass = encoder.beginComputePass(profiler?.passDescriptor('embedding') ?? { label: 'Decoder.step' });
    const section = (name: string) => {
      if (!split) return;
      pass.end();
      pass = encoder.beginComputePass(profiler!.passDescriptor(name));
    };

    k.embedding.setShape(this.embedding, { tokens: T, idsOffset: startPos, scale: c.embeddingMultiplier });
    k.embedding.encode(pass, this.embedding, T);

    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l];
      section(`Layer${l}.attention`);
      k.norm.setShape(L.inputNorm, { rows: T, cols: H, eps: c.rmsNormEps });
      k.norm.encode(pass, L.inputNorm, T);
      if (L.attn.kind === 'mla') L.attn.encode(pass, T, startPos);
      else this.encodeStandardAttention(pass, L.attn, T, startPos);
      k.residual.setShape(L.attnResidual, { count: T * H, scale: c.residualMultiplier });
      k.residual.encode(pass, L.attnResidual, T * H);

      section(`Layer${l}.${L.moe ? 'moe' : 'mlp'}`);
      k.norm.setShape(L.postNorm, { rows: T, cols: H, eps: c.rmsNormEps });
      k.norm.encode(pass, L.postNorm, T);
      if (L.moe) {
        L.moe.encode(pass, this.act.normed, this.act.branch, T, startPos);
      } else if (L.dense) {
        k.linear.encode(pass, L.dense.gateUp, T);
        k.swiglu.setShape(L.dense.swiglu, { tokens: T, inter: c.intermediateSize });
        k.swiglu.encode(pass, L.dense.swiglu, T);
        k.linear.encode(pass, L.dense.down, T);
      }
      k.residual.setShape(L.ffnResidual, { count: T * H, scale: c.residualMultiplier });
      k.residual.encode(pass, L.ffnResidual, T * H);
    }

    section('lmHead');
    k.normF32.setShape(this.finalNorm, { rows: T, cols: H, eps: c.rmsNormEps });
    k.normF32.encode(pass, this.finalNorm, T);
    k.linear.encode(pass, this.lmHead, T);
    pass.end();
  }

  /**
   * Dynamic NTK RoPE: transformers recomputes inv_freq for every forward whose sequence (max position + 1) passes
   * max_position_embeddings, and goes back to the plain table below it. The table is rewritten only when it changes.
   * A prompt split over several steps gets each chunk's own table, where transformers uses the whole prompt's.
   */
  private updateDynamicRope(seqLen: number): void {
    const s = this.config.ropeScaling;
    if (s?.type !== 'dynamic') return;
    const effective = Math.max(seqLen, s.maxPositions);
    if (effective === this.ropeSeqLen) return;
    this.ropeSeqLen = effective;
    this.gpu.device.queue.writeBuffer(this.invFreq, 0, ropeTables(s, this.ropeDim, this.config.ropeTheta, effective).invFreq);
  }

  destroy(): void {
    for (const b of [...Object.values(this.act), ...this.kvCaches, this.invFreq, ...(this.mlaScratch?.buffers ?? [])]) b?.destroy();
    for (const m of this.moeLayers) m.destroy();
  }
}
