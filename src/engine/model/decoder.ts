// The whole decoder on the GPU: embedding → layers (RMSNorm, attention with RoPE and a KV cache, MoE or dense FFN,
// residuals) → final norm → LM head. Every buffer and bind group is made here, at load time; a step only writes
// uniforms into the arena (one queue write) and records dispatches (encodeStep), all layers in one compute pass
// unless the profiler splits them.
//
// Fused kernels (DecoderOptions.fuse, default on): q/k/v weights concatenated at load into one projection, followed
// by one kernel for q/k/v biases, q/k norms, RoPE and the KV-cache append (RopeAppendKernel); for one-token steps the
// input RMSNorm folded into that projection's GEMV; up to 16 tokens the o-projection accumulating into x; at every T
// the post-attention RMSNorm folded into the MoE router and the MoE combine adding into x (for one-token steps the
// experts' down projection, combine and residual add in one kernel). A decode MoE layer is 9 dispatches
// (tests/gpu/decode-recording.test.ts).
//
// Family details handled here: q/k/v biases (Qwen2-MoE), q/k RMSNorm over the whole projection (OLMoE) or per head
// (Qwen3-MoE), Granite-MoE's multipliers (embedding ×, residual branches ×, attention scale, logits ÷ — the last folded
// into the final norm's weight), Mixtral's sliding window, tied LM heads, RoPE scaling (src/model/rope.ts; dynamic
// NTK tables rewritten per step), gpt-oss's per-layer windows, attention sinks, o_proj bias and router bias
// (gptOssLayer). DeepSeek's multi-head latent attention lives in MlaAttention (./mla.ts), shared experts and expert
// biases in MoeLayer.
import type { Gpu } from '../gpu';
import type { MoeConfig } from '../../model/config';
import { tensorBytes, type TensorFormat } from '../../model/dtypes';
import { DedupPass, UniformArena, storageBuffer } from '../kernels/common';
import { EmbeddingKernel, type EmbeddingBinding } from '../kernels/embedding';
import { RmsNormKernel, type RmsNormBinding } from '../kernels/rmsnorm';
import { LinearKernel, type LinearBinding } from '../kernels/linear';
import { GEMV_MAX_ROWS, GemvKernel, gemvAligned, gemvNormFits, type GemvBinding } from '../kernels/gemv';
import { BiasAddKernel, type BiasAddBinding } from '../kernels/bias-add';
import { ROPE_APPEND_CONSTANTS, RopeAppendKernel, RopeKernel, type RopeAppendBinding, type RopeBinding } from '../kernels/rope';
import { ropeTables } from '../../model/rope';
import { AttentionKernel, createKvCache, type AttentionBinding } from '../kernels/attention';
import type { ProbeTarget } from '../kernels/split-attention';
import { ResidualKernel, type ResidualBinding } from '../kernels/residual';
import { SwigluKernel, type SwigluBinding } from '../kernels/swiglu';
import { MoeLayer, moeScratchShape } from '../routing/moe-layer';
import { MoeScratch } from '../routing/scratch';
import type { RoutingStats } from '../routing/stats';
import type { RoutingPolicy } from '../session-api';
import type { Profiler } from '../profiler';
import { concatBuffers, type UploadedWeights } from './weights';
import { MlaAttention, MlaScratch, mlaKernels, type MlaKernels } from './mla';

export interface DecoderOptions {
  /** Most tokens one step processes (prefill is chunked to this). */
  maxTokensPerStep: number;
  /** Positions the KV cache holds. */
  maxSeq: number;
  /**
   * Fused kernels (default true): q/k/v in one projection with one bias/norm/RoPE/append kernel, norms folded into
   * the q/k/v GEMV and the router, residual adds into the o-projection and the MoE combine. False runs each op as its
   * own kernel: the path the fusions are checked against.
   */
  fuse?: boolean;
  /** The routing record (default true); false skips the ring and the sums (MoeLayerOptions.record). */
  routingRecord?: boolean;
}

/**
 * q, k and v in one projection [T, qDim + 2·kvDim] (weights concatenated at load), then one kernel for the biases,
 * q/k norms, RoPE and the KV-cache append (RopeAppendKernel); q lands in act.q.
 */
interface FusedProjection {
  kind: 'fused';
  qkv: LinearBinding;
  /** One token: the same projection from x with the layer's input RMSNorm folded in (when it fits), N outputs. */
  qkvNormed: { kernel: GemvKernel; binding: GemvBinding; N: number } | null;
  append: RopeAppendBinding;
}

/** q, k and v as three projections, biases, q/k norms and RoPE as separate kernels; attention stores k and v. */
interface SplitProjection {
  kind: 'split';
  q: LinearBinding;
  k: LinearBinding;
  v: LinearBinding;
  biases: BiasAddBinding[];
  qNorm: RmsNormBinding | null;
  kNorm: RmsNormBinding | null;
  rope: RopeBinding;
  /** What attention reads: q and k after their norms where the family has them. */
  qIn: GPUBuffer;
  kIn: GPUBuffer;
}

/** Grouped-query attention with RoPE over a per-head KV cache (every family but DeepSeek). */
interface StandardAttention {
  kind: 'standard';
  project: FusedProjection | SplitProjection;
  attention: AttentionBinding;
  o: LinearBinding;
  /** gpt-oss o_proj bias, added to the o-projection's output. */
  oBias: BiasAddBinding | null;
  /** Up to GEMV_MAX_ROWS tokens: x += residual multiplier · o-projection (the residual add fused), then its bias. */
  oResidual: LinearBinding;
  oBiasResidual: BiasAddBinding | null;
}

interface LayerBindings {
  inputNorm: RmsNormBinding;
  /** Adds its output to x itself up to GEMV_MAX_ROWS tokens; attnResidual adds it above. */
  attn: StandardAttention | MlaAttention;
  attnResidual: ResidualBinding;
  postNorm: RmsNormBinding;
  /**
   * Fused: adds its output to x itself (the residual add in its combine); with `moeNormFolded` it also reads x
   * itself (the router does postNorm's work, writing act.normed for the experts). Unfused: output in branch.
   */
  moe: MoeLayer | null;
  moeNormFolded: boolean;
  dense: { gateUp: LinearBinding; swiglu: SwigluBinding; down: LinearBinding } | null;
  /** x += branch after a dense FFN, or an unfused MoE layer. */
  ffnResidual: ResidualBinding;
}

/** Activation buffers, all f32 unless noted; T = maxTokensPerStep. */
interface Activations {
  ids: GPUBuffer; // u32 [maxSeq] token id at each position (sampling appends here)
  x: GPUBuffer; // [T, H] residual stream
  normed: GPUBuffer; // [T, H] normalised input of attention / FFN / LM head
  qkv: GPUBuffer; // [T, nH·d + 2·nKV·d] the fused q/k/v projection
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
  /** Frees an entry's buffer (its contents now live elsewhere) and drops it from the weights. */
  release: (name: string) => void;
  /** Adds a buffer the decoder made from loaded entries (the session frees it with the weights). */
  adopt: (name: string, buffer: GPUBuffer, format: TensorFormat) => void;
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
  /** Every uniform the step writes but attention's: one queue write per step (UniformArena.flush). */
  private readonly uniforms: UniformArena;
  /** Buffers made here from loaded weights (concatenated biases and q/k norm weights, the scaled final norm). */
  private readonly owned: GPUBuffer[] = [];
  /** DecoderOptions.fuse. */
  private readonly fuse: boolean;
  /** Token count the shape-only uniforms (norms, residuals, biases, SwiGLU) were last written for. */
  private shapedTokens = 0;

  constructor(
    private readonly gpu: Gpu,
    readonly config: MoeConfig,
    weights: UploadedWeights,
    stats: RoutingStats,
    readonly options: DecoderOptions,
  ) {
    const c = config;
    this.fuse = options.fuse ?? true;
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
    const release = (name: string) => {
      w(name).destroy();
      weights.buffers.delete(name);
      weights.formats.delete(name);
    };
    const adopt = (name: string, buffer: GPUBuffer, format: TensorFormat) => {
      weights.buffers.set(name, buffer);
      weights.formats.set(name, format);
    };

    const arena = (this.uniforms = new UniformArena(gpu, 'Decoder'));
    this.kernels = {
      embedding: new EmbeddingKernel(gpu, fmt('embed'), arena),
      norm: new RmsNormKernel(gpu, dtype, arena),
      normF32: new RmsNormKernel(gpu, 'f32', arena),
      linear: new LinearKernel(gpu, arena),
      bias: new BiasAddKernel(gpu, dtype, arena),
      rope: new RopeKernel(gpu, arena),
      append: new RopeAppendKernel(gpu, dtype, arena),
      attention: new AttentionKernel(gpu, {}, arena),
      residual: new ResidualKernel(gpu, arena),
      swiglu: new SwigluKernel(gpu, arena),
    };
    const k = this.kernels;
    const buf = (name: string, bytes: number) => storageBuffer(gpu, `Decoder.${name}`, bytes);
    this.act = {
      ids: buf('ids', options.maxSeq * 4),
      x: buf('x', T * H * 4),
      normed: buf('normed', T * H * 4),
      qkv: buf('qkv', T * (qDim + 2 * kvDim) * 4),
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

    const mla: MlaKernels | null = c.mla ? mlaKernels(gpu, c, { norm: k.norm, linear: k.linear, rope: k.rope, residual: k.residual }) : null;
    for (let l = 0; l < c.numLayers; l++) {
      const p = `layers.${l}`;
      const label = `Layer${l}`;
      const attn = c.mla
        ? new MlaAttention(gpu, mla!, c, label, { x: a.normed, q: a.q, out: a.branch, residual: { x: a.x, scale: c.residualMultiplier }, invFreq: this.invFreq, ropeScaling: rope.attentionFactor },
          this.mlaScratch!, { get: (role) => w(`${p}.${role}`), dense: (role) => denseW(`${p}.${role}`), format: (role) => fmt(`${p}.${role}`) },
          { maxTokens: T, maxSeq: options.maxSeq })
        : this.standardAttention(l, { w, has, fmt, denseW, release, adopt }, rope.attentionFactor);
      this.kvCaches.push(...(attn.kind === 'mla' ? [attn.cache] : [attn.attention.buffers.kCache, attn.attention.buffers.vCache]));
      const isMoe = c.moeLayers[l];
      let moe: MoeLayer | null = null;
      // The router folds the post-attention norm in where it reads weights in the norm's dtype.
      const moeNormFolded = this.fuse && Boolean(isMoe) && fmt(`${p}.router`) === dtype;
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
          arena,
          record: options.routingRecord,
          fusedDecode: this.fuse,
          ...(this.fuse ? { residualScale: c.residualMultiplier } : {}),
          ...(moeNormFolded ? { inputNorm: { weight: denseW(`${p}.postAttnNorm`), eps: c.rmsNormEps, normed: a.normed } } : {}),
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
        moeNormFolded,
        dense,
        ffnResidual: k.residual.bindInPlace(`${label}.ffnResidual`, a.x, a.branch),
      });
    }

    // Granite-MoE divides the logits by logits_scaling: folded into the final norm's weight (kept in f32).
    const finalNormF32 = weights.f32.get('finalNorm');
    if (!finalNormF32) throw new Error('model weights: the final norm must be kept as f32 (keepF32)');
    const scaled = finalNormF32.map((v) => v / c.logitsScaling);
    const finalNormWeight = buf('finalNormScaled', scaled.byteLength);
    this.owned.push(finalNormWeight);
    gpu.device.queue.writeBuffer(finalNormWeight, 0, scaled);
    this.finalNorm = k.normF32.bind('Decoder.finalNorm', a.x, finalNormWeight, a.normed);
    const lmHeadName = c.tieWordEmbeddings || !has('lmHead') ? 'embed' : 'lmHead';
    this.lmHead = linear('Decoder.lmHead', a.normed, lmHeadName, a.logits, H, c.vocabSize);
  }

  /** Standard attention of layer l: the q/k/v projection (biases, q/k norms, RoPE, the KV append), attention, o. */
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
    const project = (this.fuse ? this.fusedProjection(l, weights, ropeScaling, cache) : null) ?? this.splitProjection(l, weights, ropeScaling);
    // Sinks are kept in f32 (upload-weights); the o_proj bias is read by the bias kernel in the model's dtype.
    const extra = gptOssLayer(c, l, (role) => (!has(`${p}.${role}`) ? null : role === 'oBias' ? denseW(`${p}.${role}`) : w(`${p}.${role}`)));
    // The fused path appends k and v itself (attention only attends); the split path's store reads them from k, v.
    const fresh = project.kind === 'fused'
      ? { q: a.q, kNew: a.qkv, vNew: a.qkv, kvStride: qDim + 2 * kvDim, kOffset: qDim, vOffset: qDim + kvDim }
      : { q: project.qIn, kNew: project.kIn, vNew: a.v };
    return {
      kind: 'standard',
      project,
      attention: k.attention.bind(
        `${label}.attention`,
        { q: fresh.q, kNew: fresh.kNew, vNew: fresh.vNew, kCache: cache.k, vCache: cache.v, out: a.attn, ...(extra.sinks ? { sinks: extra.sinks } : {}) },
        {
          heads: c.numHeads,
          kvHeads: c.numKvHeads,
          headDim: d,
          maxSeq: options.maxSeq,
          scale: c.attentionScale,
          window: extra.window,
          ...('kvStride' in fresh ? { kvStride: fresh.kvStride, kOffset: fresh.kOffset, vOffset: fresh.vOffset } : {}),
        },
      ),
      o: linear(`${label}.o`, a.attn, `${p}.o`, a.branch, qDim, H),
      oBias: extra.oBias ? k.bias.bind(`${label}.oBias`, a.branch, extra.oBias, H) : null,
      oResidual: k.linear.bind(`${label}.oResidual`, a.attn, w(`${p}.o`), a.x, {
        K: qDim, N: H, maxRows: Math.min(T, GEMV_MAX_ROWS), weightDtype: fmt(`${p}.o`), accumulate: true, alpha: c.residualMultiplier,
      }),
      // The bias goes straight into x: only right with no residual multiplier (gpt-oss has none).
      oBiasResidual: extra.oBias && c.residualMultiplier === 1 ? k.bias.bind(`${label}.oBiasResidual`, a.x, extra.oBias, H) : null,
    };
  }

  /**
   * q, k and v as one projection: their weights concatenated here into one [qDim + 2·kvDim, H] tensor (the three
   * loaded tensors are freed), and the RoPE + KV-append kernel doing biases, q/k norms, RoPE and the cache writes.
   * Null when the three differ in format (GGUF files may mix them): then splitProjection.
   */
  private fusedProjection(
    l: number, weights: LayerWeights, ropeScaling: number, cache: { k: GPUBuffer; v: GPUBuffer },
  ): FusedProjection | null {
    const { w, has, fmt, denseW } = weights;
    const { config: c, act: a, kernels: k, options, gpu } = this;
    const H = c.hiddenSize, d = c.headDim, dtype = c.weightDtype;
    const qDim = c.numHeads * d, kvDim = c.numKvHeads * d;
    const p = `layers.${l}`;
    const label = `Layer${l}`;
    const names = [`${p}.q`, `${p}.k`, `${p}.v`];
    const format = fmt(names[0]);
    const bytes = [qDim, kvDim, kvDim].map((rows) => tensorBytes(format, [rows, H]));
    if (names.some((n) => fmt(n) !== format) || bytes.some((b) => b === null || b % 4 !== 0) || d > ROPE_APPEND_CONSTANTS.MAX_HEAD_DIM) return null;
    const qkvWeight = concatBuffers(gpu, `${label}.qkvWeight`, names.map((n, i) => ({ buffer: w(n), bytes: bytes[i]! })));
    for (const n of names) weights.release(n);
    weights.adopt(`${p}.qkv`, qkvWeight, format);
    const vectors = (roles: string[], name: string) =>
      concatBuffers(gpu, `${label}.${name}`, roles.map((r) => ({ buffer: denseW(`${p}.${r}`), bytes: tensorBytes(dtype, [this.vectorLength(r)])! })));
    const bias = has(`${p}.qBias`) ? vectors(['qBias', 'kBias', 'vBias'], 'qkvBias') : null;
    const norm = c.qkNorm !== 'none' ? vectors(['qNorm', 'kNorm'], 'qkNorm') : null;
    for (const b of [bias, norm]) if (b) this.owned.push(b);
    const N = qDim + 2 * kvDim;
    return {
      kind: 'fused',
      qkv: k.linear.bind(`${label}.qkv`, a.normed, qkvWeight, a.qkv, { K: H, N, maxRows: options.maxTokensPerStep, weightDtype: format }),
      qkvNormed: this.normedGemv(`${label}.qkvNormed`, qkvWeight, format, denseW(`${p}.inputNorm`), a.qkv, N),
      append: k.append.bind(`${label}.append`, { invFreq: this.invFreq, qkv: a.qkv, qOut: a.q, kCache: cache.k, vCache: cache.v }, {
        heads: c.numHeads, kvHeads: c.numKvHeads, headDim: d, maxSeq: options.maxSeq, scaling: ropeScaling, bias,
        qkNorm: norm ? { mode: c.qkNorm === 'head' ? 'head' : 'all', weight: norm, eps: c.rmsNormEps } : null,
      }),
    };
  }

  /**
   * y[1, N] = RMSNorm(x[0]) · Wᵀ in one GEMV (the layer's input norm folded in), for one-token steps; null where the
   * GEMV cannot take it (W quantised or not in the norm's dtype, or the row too long for workgroup memory).
   */
  private normedGemv(label: string, W: GPUBuffer, format: TensorFormat, normWeight: GPUBuffer, y: GPUBuffer, N: number): FusedProjection['qkvNormed'] {
    const c = this.config;
    const H = c.hiddenSize;
    const o = { weightDtype: format, weightLayout: 'nk', rows: 1, normK: H, N } as const;
    if (format !== c.weightDtype || !gemvNormFits(this.gpu, o)) return null;
    const kernel = new GemvKernel(this.gpu, { ...o, aligned: gemvAligned(H, N, format, 'nk') }, this.uniforms);
    const binding = kernel.bind(label, this.act.x, W, y, normWeight);
    kernel.setShape(binding, { rows: 1, N, K: H, eps: c.rmsNormEps });
    return { kernel, binding, N };
  }

  /** Elements of a per-layer attention vector (biases, q/k norm weights). */
  private vectorLength(role: string): number {
    const c = this.config;
    const qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
    if (role === 'qBias') return qDim;
    if (role === 'kBias' || role === 'vBias') return kvDim;
    // q/k norms: per head ([d]) or over the projection.
    if (c.qkNorm === 'head') return c.headDim;
    return role === 'qNorm' ? qDim : kvDim;
  }

  /** q, k and v as three projections, then biases, q/k norms and RoPE as separate kernels (attention appends). */
  private splitProjection(l: number, weights: LayerWeights, ropeScaling: number): SplitProjection {
    const { w, has, fmt, denseW } = weights;
    const { config: c, act: a, kernels: k, options } = this;
    const T = options.maxTokensPerStep, H = c.hiddenSize, d = c.headDim;
    const qDim = c.numHeads * d, kvDim = c.numKvHeads * d;
    const p = `layers.${l}`;
    const label = `Layer${l}`;
    const linear = (label: string, x: GPUBuffer, name: string, y: GPUBuffer, K: number, N: number) =>
      k.linear.bind(label, x, w(name), y, { K, N, maxRows: T, weightDtype: fmt(name) });
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
    return {
      kind: 'split',
      q: linear(`${label}.q`, a.normed, `${p}.q`, a.q, H, qDim),
      k: linear(`${label}.k`, a.normed, `${p}.k`, a.k, H, kvDim),
      v: linear(`${label}.v`, a.normed, `${p}.v`, a.v, H, kvDim),
      biases,
      qNorm,
      kNorm,
      rope: k.rope.bind(`${label}.rope`, this.invFreq, qIn, kIn, { qHeads: c.numHeads, kHeads: c.numKvHeads, headDim: d, scaling: ropeScaling }),
      qIn,
      kIn,
    };
  }

  /**
   * Standard attention of T tokens from x: the input norm (or the projection with it folded in), attention, and its
   * output added to x (by the o-projection itself, or by `residual`).
   */
  private encodeStandardAttention(pass: GPUComputePassEncoder, L: LayerBindings, A: StandardAttention, T: number, startPos: number): void {
    const c = this.config;
    const k = this.kernels;
    const P = A.project;
    if (P.kind === 'fused' && T === 1 && P.qkvNormed) {
      P.qkvNormed.kernel.encode(pass, P.qkvNormed.binding, P.qkvNormed.N);
    } else {
      k.norm.encode(pass, L.inputNorm, T);
      if (P.kind === 'fused') k.linear.encode(pass, P.qkv, T);
    }
    if (P.kind === 'fused') {
      k.append.setShape(P.append, { tokens: T, startPos });
      k.append.encode(pass, P.append, T);
      k.attention.setShape(A.attention, { tokens: T, startPos });
      k.attention.encodeAttend(pass, A.attention, T);
    } else {
      k.linear.encode(pass, P.q, T);
      k.linear.encode(pass, P.k, T);
      k.linear.encode(pass, P.v, T);
      for (const b of P.biases) k.bias.encode(pass, b, T);
      if (P.qNorm && P.kNorm) {
        // OLMoE normalises the whole projection; Qwen3-MoE each head (rows = tokens · heads).
        const perHead = c.qkNorm === 'head';
        k.norm.encode(pass, P.qNorm, perHead ? T * c.numHeads : T);
        k.norm.encode(pass, P.kNorm, perHead ? T * c.numKvHeads : T);
      }
      k.rope.setShape(P.rope, { tokens: T, startPos });
      k.rope.encode(pass, P.rope, T);
      k.attention.setShape(A.attention, { tokens: T, startPos });
      k.attention.encode(pass, A.attention, T);
    }
    if (this.residualFused(T) && (!A.oBias || A.oBiasResidual)) {
      k.linear.encode(pass, A.oResidual, T);
      if (A.oBiasResidual) k.bias.encode(pass, A.oBiasResidual, T);
    } else {
      k.linear.encode(pass, A.o, T);
      if (A.oBias) k.bias.encode(pass, A.oBias, T);
      k.residual.encode(pass, L.attnResidual, T * c.hiddenSize);
    }
  }

  /** Whether attention's o-projection adds into x itself (a GEMV, up to GEMV_MAX_ROWS tokens). */
  private residualFused(T: number): boolean {
    return this.fuse && T <= GEMV_MAX_ROWS;
  }

  /** Writes the uniforms that depend on the token count only (norms, residuals, biases, SwiGLU): when T changes. */
  private setShapes(T: number): void {
    const c = this.config;
    const k = this.kernels;
    const H = c.hiddenSize;
    const norm = { rows: T, cols: H, eps: c.rmsNormEps };
    const residual = { count: T * H, scale: c.residualMultiplier };
    for (const L of this.layers) {
      k.norm.setShape(L.inputNorm, norm);
      k.norm.setShape(L.postNorm, norm);
      k.residual.setShape(L.attnResidual, residual);
      k.residual.setShape(L.ffnResidual, residual);
      if (L.dense) k.swiglu.setShape(L.dense.swiglu, { tokens: T, inter: c.intermediateSize });
      const A = L.attn;
      if (A.kind === 'mla') continue;
      if (A.oBias) k.bias.setRows(A.oBias, T);
      if (A.oBiasResidual && this.residualFused(T)) k.bias.setRows(A.oBiasResidual, T);
      const P = A.project;
      if (P.kind === 'fused') continue;
      for (const b of P.biases) k.bias.setRows(b, T);
      if (P.qNorm && P.kNorm) {
        const perHead = c.qkNorm === 'head';
        k.norm.setShape(P.qNorm, perHead ? { rows: T * c.numHeads, cols: c.headDim, eps: c.rmsNormEps } : { rows: T, cols: c.numHeads * c.headDim, eps: c.rmsNormEps });
        k.norm.setShape(P.kNorm, perHead ? { rows: T * c.numKvHeads, cols: c.headDim, eps: c.rmsNormEps } : { rows: T, cols: c.numKvHeads * c.headDim, eps: c.rmsNormEps });
      }
    }
    k.normF32.setShape(this.finalNorm, norm);
    this.shapedTokens = T;
  }

  setPolicy(policy: RoutingPolicy): void {
    for (const moe of this.moeLayers) moe.setPolicy(policy);
  }

  /** Per layer, the attention probe handle of its attention (./attention-probe.ts). */
  attentionProbeTargets(): ProbeTarget[] {
    return this.layers.map((L) => (L.attn.kind === 'mla' ? L.attn.probeTarget() : this.kernels.attention.probeTarget(L.attn.attention)));
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
    if (T !== this.shapedTokens) this.setShapes(T);
    const split = profiler?.enabled ?? false;
    const begin = (descriptor: GPUComputePassDescriptor) => new DedupPass(encoder.beginComputePass(descriptor)).encoder;
    let pass = begin(profiler?.passDescriptor('embedding') ?? { label: 'Decoder.step' });
    const section = (name: string) => {
      if (!split) return;
      pass.end();
      pass = begin(profiler!.passDescriptor(name));
    };

    k.embedding.setShape(this.embedding, { tokens: T, idsOffset: startPos, scale: c.embeddingMultiplier });
    k.embedding.encode(pass, this.embedding, T);

    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l];
      if (split) section(`Layer${l}.attention`);
      if (L.attn.kind === 'mla') {
        k.norm.encode(pass, L.inputNorm, T);
        L.attn.encode(pass, T, startPos, L.attnResidual, this.residualFused(T));
      } else {
        this.encodeStandardAttention(pass, L, L.attn, T, startPos);
      }

      if (split) section(`Layer${l}.${L.moe ? 'moe' : 'mlp'}`);
      if (L.moe && L.moeNormFolded) {
        L.moe.encode(pass, this.act.x, this.act.x, T, startPos);
      } else if (L.moe && this.fuse) {
        k.norm.encode(pass, L.postNorm, T);
        L.moe.encode(pass, this.act.normed, this.act.x, T, startPos);
      } else {
        k.norm.encode(pass, L.postNorm, T);
        if (L.moe) {
          L.moe.encode(pass, this.act.normed, this.act.branch, T, startPos);
        } else if (L.dense) {
          k.linear.encode(pass, L.dense.gateUp, T);
          k.swiglu.encode(pass, L.dense.swiglu, T);
          k.linear.encode(pass, L.dense.down, T);
        }
        k.residual.encode(pass, L.ffnResidual, T * H);
      }
    }

    section('lmHead');
    k.normF32.encode(pass, this.finalNorm, T);
    k.linear.encode(pass, this.lmHead, T);
    pass.end();
    this.uniforms.flush();
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
    this.uniforms.destroy();
    for (const b of this.owned) b.destroy();
    this.kernels.append.destroy();
    this.scratch?.destroy();
  }
}
