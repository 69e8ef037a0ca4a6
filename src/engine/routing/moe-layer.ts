// One MoE block on the GPU: router → (re-route) → plan → grouped SwiGLU experts (→ shared expert) → combine.
//
//   const stats = new RoutingStats(gpu, config);                       // all layers' routing record
//   const scratch = new MoeScratch(gpu, moeScratchShape(config, { maxTokens: 256 }));  // shared by all layers
//   const moe = new MoeLayer(gpu, { layer: 3, config, weights, stats, scratch });      // at load time
//   moe.setPolicy(policy);                         // what-if controls: uniform writes only
//   moe.encode(passOrEncoder, x, out, T, position) // per step: x [T, H] post-norm input → out [T, H]
//                                                  // (residualScale set: out += residualScale · output)
//
// encode() writes the layer's uniform through the queue and records its dispatches; it creates no GPU object after
// the first call with a given (x, out) pair, and never maps a buffer. Encode each layer at most once per submit
// (its uniform holds this step's token count and position). Decode (T = 1, no shared expert, no re-routing) records
// 5 dispatches: router logits, router selection with the plan, scatter, expert gate/up, and the expert down
// projection fused with the combine and the residual add (moe_down_combine; with fusedDecode false, or
// T > FUSED_DOWN_TOKENS: expert down, then combine, 6). Add 1 per extra weight binding when an expert bank is split,
// 2 for a shared expert (gate/up, down); the plan is its own dispatch on a device without 12 storage buffers per stage,
// and with the re-route policy (+1 for it, +1 for the plan after it). Other steps: router logits and selection up to
// ROUTER_FEW_TOKENS tokens, one router dispatch above; then (re-route,) plan (two dispatches above
// PLAN_SPLIT_TOKENS), scatter, experts, combine.
import type { Gpu } from '../gpu';
import type { MoeConfig } from '../../model/config';
import { isQuantFormat, type TensorFormat } from '../../model/dtypes';
import type { RoutingPolicy } from '../session-api';
import { type UniformArena, Uniforms, storageBuffer } from '../kernels/common';
import { MoeRouterKernel, type MoeRouterBinding } from '../kernels/moe-router';
import { MoeRerouteKernel } from '../kernels/moe-reroute';
import { MoePlanKernel, PLAN_SPLIT_TOKENS } from '../kernels/moe-plan';
import { MoeCombineKernel } from '../kernels/moe-combine';
import { MoeDownCombineKernel, type DownCombineBinding } from '../kernels/moe-down-combine';
import { MoeScatterKernel } from '../kernels/moe-scatter';
import { ExpertMatmulKernel, defaultTiledShape, maxPlanTiles, type ExpertMatmulBinding, type TiledShape } from '../kernels/moe-expert';
import { K_MAX } from '../routing-buffers';
import { MOE_LAYER_PARAMS } from '../kernels/moe-layout';
import { defaultPolicy, effectiveTopK, expertCapacity, validatePolicy } from './policy';
import type { RoutingStats } from './stats';
import type { MoeScratch, MoeScratchShape } from './scratch';

/** A bank of per-expert matrices split over one or more GPU buffers of `expertsPerBuffer` consecutive experts. */
export interface ExpertBank {
  buffers: GPUBuffer[];
  expertsPerBuffer: number;
  /** Weight format of the bank (default: the config's weight dtype); block-quantised banks are decoded in the kernels. */
  format?: TensorFormat;
}

/** Every buffer here is read through 16-byte views: allocate sizes rounded up to 16 bytes (storageBuffer does). */
export interface MoeLayerWeights {
  /** [E, H] router (gate) weight, weight-dtype words. */
  router: GPUBuffer;
  /** The router's dtype when it differs from the config's (GGUF files keep routers in F32). */
  routerFormat?: TensorFormat;
  /** f32 [E] router bias (config.router.hasBias). */
  routerBias?: GPUBuffer | null;
  /** f32 [E] DeepSeek-V3 e_score_correction_bias (config.router.hasCorrectionBias). */
  correctionBias?: GPUBuffer | null;
  /** [E, 2I, H] fused gate_up (rows 0..I-1 gate, I..2I-1 up), weight-dtype words. */
  gateUp: ExpertBank;
  /** [E, H, I] down projection, weight-dtype words. */
  down: ExpertBank;
  /** gpt-oss (config.expertBias): f32 [E, 2I] gate then up biases and f32 [E, H] down biases. */
  gateUpBias?: GPUBuffer | null;
  downBias?: GPUBuffer | null;
  /** Shared expert: gate_up [2Is, H], down [H, Is], and for Qwen2-MoE the gate vector [H] (shared_expert_gate). */
  shared?: { gateUp: GPUBuffer; down: GPUBuffer; gate?: GPUBuffer | null; formats?: { gateUp: TensorFormat; down: TensorFormat } } | null;
}

export interface MoeLayerOptions {
  layer: number;
  config: MoeConfig;
  weights: MoeLayerWeights;
  stats: RoutingStats;
  scratch: MoeScratch;
  /**
   * Expert matmul kernels: 'auto' picks 'gemv' for ≤ 16 rows per expert on average, 'tiled-narrow' (64-row tiles)
   * up to 96, else 'tiled' (128-row tiles, or `tiledShape`).
   */
  expertMode?: ExpertVariant | 'auto';
  tiledShape?: TiledShape;
  policy?: RoutingPolicy;
  /**
   * The residual add fused into the combine: encode's `out` is then the residual stream [T, H] and receives
   * out += residualScale · (the layer's output). Absent: out = the layer's output.
   */
  residualScale?: number;
  /**
   * The layer's input RMSNorm folded into the router: encode's `x` is then the residual stream [T, H] (it may be
   * `out` too), the router writes x · inv_rms · weight to `normed` [T, H] and the experts read that. weight: [H] in
   * the router's dtype.
   */
  inputNorm?: { weight: GPUBuffer; eps: number; normed: GPUBuffer };
  /**
   * The routing record (default true). False, for measuring what the record costs: no ring rows are written (the
   * uniform's ring_capacity is 0) and decode-sized plans skip the probMass/gateSum/zLossSum sums; the plan's count
   * statistics still run. Snapshots of such a layer are not meaningful.
   */
  record?: boolean;
  /** Where the layer's uniform lives (the decoder's, flushed once per step); absent: its own buffer, written at once. */
  arena?: UniformArena | null;
  /**
   * Steps of up to FUSED_DOWN_TOKENS tokens run the expert down projection, the combine and the residual add as one
   * kernel per down-weight binding (default true); false: the down GEMV, then the combine, at every T.
   */
  fusedDecode?: boolean;
}

/**
 * Most tokens a step runs through the fused down projection + combine: it reads each token's experts' down rows
 * for that token alone, so past one token an expert shared by several tokens would be read once per token, where
 * the grouped down GEMV reads it once for all its rows.
 */
export const FUSED_DOWN_TOKENS = 1;

/** Scratch shape for a config: `maxTokens` per encode, room for `maxK` experts per token (default K_MAX). */
export function moeScratchShape(config: MoeConfig, o: { maxTokens: number; maxK?: number }): MoeScratchShape {
  return {
    experts: config.numExperts,
    hidden: config.hiddenSize,
    intermediate: config.moeIntermediateSize,
    sharedIntermediate: config.sharedExpert?.intermediateSize ?? 0,
    maxTokens: o.maxTokens,
    maxK: o.maxK ?? K_MAX,
  };
}

/** The expert matmul kernels a step can use. */
export type ExpertVariant = 'gemv' | 'tiled-narrow' | 'tiled';
const VARIANTS: ExpertVariant[] = ['gemv', 'tiled-narrow', 'tiled'];

/** Timestamp descriptors per pass (src/engine/profiler.ts's Profiler has this shape). */
export interface PassTimestamps {
  passDescriptor(name: string): GPUComputePassDescriptor;
}

type Emit = (name: string, record: (pass: GPUComputePassEncoder) => void) => void;

interface ExpertKernels {
  up: ExpertMatmulKernel;
  down: ExpertMatmulKernel;
  sharedUp: ExpertMatmulKernel;
  sharedDown: ExpertMatmulKernel;
}

interface ExpertPair {
  up: ExpertMatmulKernel;
  down: ExpertMatmulKernel;
  /** One (up, down) binding per weight buffer of the banks. */
  upBindings: ExpertMatmulBinding[];
  downBindings: ExpertMatmulBinding[];
  sharedUp: ExpertMatmulBinding | null;
  sharedDown: ExpertMatmulBinding | null;
  /** The shared expert's kernels: up/down themselves unless its tensors have other formats (GGUF files mix them). */
  sharedKernels: { up: ExpertMatmulKernel; down: ExpertMatmulKernel };
}

interface IoGroups {
  router: MoeRouterBinding;
  combine: GPUBindGroup;
  /** The fused down projection + combine, one per down-weight buffer (empty when the layer does not fuse). */
  downCombine: DownCombineBinding[];
  modes: Record<ExpertVariant, ExpertPair>;
}

export class MoeLayer {
  readonly layer: number;
  private readonly config: MoeConfig;
  private readonly scratch: MoeScratch;
  private readonly stats: RoutingStats;
  /** The layer's weight buffers (src/engine/analysis/expert-merge.ts rewrites the expert banks). */
  readonly weights: MoeLayerWeights;
  private readonly params: Uniforms;
  private readonly values: Record<string, number> = {};
  /** The fields a step changes, written in place each step (no allocation on the hot path). */
  private readonly step = { tokens: 0, position: 0, capacity: 0, reroute_ran: 0, tile_m: 0 };
  private readonly aux: GPUBuffer;
  private readonly router: MoeRouterKernel;
  private readonly reroute: MoeRerouteKernel;
  private readonly plan: MoePlanKernel;
  private readonly scatter: MoeScatterKernel;
  private readonly combine: MoeCombineKernel;
  private readonly downCombine: MoeDownCombineKernel | null;
  private readonly modes: Record<ExpertVariant, ExpertPair>;
  private readonly expertMode: ExpertVariant | 'auto';
  private readonly fixedGroups: { reroute: GPUBindGroup; plan: GPUBindGroup; scatter: GPUBindGroup };
  private readonly ioGroups = new Map<GPUBuffer, Map<GPUBuffer, IoGroups>>();
  private policy: RoutingPolicy;
  private k: number;
  private readonly inputNorm: MoeLayerOptions['inputNorm'] | null;

  constructor(
    private readonly gpu: Gpu,
    o: MoeLayerOptions,
  ) {
    const c = o.config;
    this.layer = o.layer;
    this.config = c;
    this.scratch = o.scratch;
    this.stats = o.stats;
    this.weights = o.weights;
    this.expertMode = o.expertMode ?? 'auto';
    validateLayer(c, o);
    const label = `Layer${o.layer}.moe`;
    const E = c.numExperts;

    this.aux = storageBuffer(gpu, `${label}.routerAux`, 2 * E * 4);
    const enc = gpu.device.createCommandEncoder({ label: `${label}.load` });
    if (c.router.hasBias) enc.copyBufferToBuffer(o.weights.routerBias!, 0, this.aux, 0, E * 4);
    if (c.router.hasCorrectionBias) enc.copyBufferToBuffer(o.weights.correctionBias!, 0, this.aux, E * 4, E * 4);
    gpu.device.queue.submit([enc.finish()]);

    this.params = new Uniforms(gpu, `${label}.params`, MOE_LAYER_PARAMS, o.arena);
    const routerFormat = o.weights.routerFormat ?? c.weightDtype;
    if (isQuantFormat(routerFormat)) throw new Error(`Layer${o.layer}: a ${routerFormat} router is not supported (routers are read dense)`);
    this.router = new MoeRouterKernel(gpu, routerFormat, c.hiddenSize, o.inputNorm !== undefined, o.record ?? true);
    this.inputNorm = o.inputNorm ?? null;
    this.reroute = new MoeRerouteKernel(gpu);
    this.plan = new MoePlanKernel(gpu, o.record ?? true);
    this.scatter = new MoeScatterKernel(gpu);
    this.combine = new MoeCombineKernel(gpu, o.residualScale !== undefined);
    this.downCombine = (o.fusedDecode ?? true)
      ? new MoeDownCombineKernel(gpu, o.weights.down.format ?? c.weightDtype, c.moeIntermediateSize, c.router.topK, o.residualScale !== undefined)
      : null;
    const s = this.scratch;
    this.fixedGroups = {
      reroute: this.reroute.bind(`${label}.reroute`, this.params, s.records, s.probs, s.plan),
      plan: this.plan.bind(`${label}.plan`, this.params, s.records, s.probs, s.plan, o.stats.buffers),
      scatter: this.scatter.bind(`${label}.scatter`, this.params, s.records, s.probs, s.plan, o.stats.buffers),
    };
    const wide = o.tiledShape ?? defaultTiledShape(gpu);
    const shapes: Record<ExpertVariant, TiledShape | undefined> = { gemv: undefined, 'tiled-narrow': { ...wide, WG_M: 8 }, tiled: wide };
    const kernels = (v: ExpertVariant) => {
      const make = (op: 'up' | 'down', format: TensorFormat) => new ExpertMatmulKernel(gpu, op, v === 'gemv' ? 'gemv' : 'tiled', format, shapes[v]);
      const upFormat = o.weights.gateUp.format ?? c.weightDtype;
      const downFormat = o.weights.down.format ?? c.weightDtype;
      const up = make('up', upFormat);
      const down = make('down', downFormat);
      const shared = o.weights.shared?.formats ?? { gateUp: upFormat, down: downFormat };
      return {
        up, down,
        sharedUp: shared.gateUp === upFormat ? up : make('up', shared.gateUp),
        sharedDown: shared.down === downFormat ? down : make('down', shared.down),
      };
    };
    this.modes = Object.fromEntries(VARIANTS.map((v) => [v, this.bindExperts(kernels(v), null)])) as Record<ExpertVariant, ExpertPair>;

    const pl = s.planLayout;
    const r = c.router;
    Object.assign(this.values, {
      layer: o.layer,
      num_layers: c.numLayers,
      hidden: c.hiddenSize,
      experts: E,
      scoring: r.scoring === 'softmax' ? 0 : 1,
      norm_topk: r.normTopK ? 1 : 0,
      has_bias: r.hasBias ? 1 : 0,
      has_corr: r.hasCorrectionBias ? 1 : 0,
      n_group: r.nGroup,
      topk_group: r.topkGroup,
      // DeepSeek-V3 (sigmoid) scores a group by the sum of its top-2, DeepSeek-V2 (softmax) by its maximum.
      group_score: r.scoring === 'sigmoid' ? 1 : 0,
      shared_mode: c.sharedExpert ? (c.sharedExpert.gated ? 2 : 1) : 0,
      scale: r.routedScalingFactor,
      ring_capacity: (o.record ?? true) ? o.stats.ringCapacity : 0,
      max_tokens: s.shape.maxTokens,
      mask_words: pl.maskWords,
      off_prefix: pl.prefix,
      off_header: pl.header,
      off_offsets: pl.offsets,
      off_kept: pl.kept,
      off_tile_expert: pl.tileExpert,
      off_tile_row: pl.tileRow,
      off_row_key: pl.rowKey,
      off_drop_step: pl.dropStep,
      off_reroute_step: pl.rerouteStep,
      choice_offset: s.shape.maxTokens * E,
      off_mask_copy: pl.maskCopy,
      off_starts: pl.starts,
      off_partials: pl.partials,
      residual_scale: o.residualScale ?? 1,
      norm_eps: o.inputNorm?.eps ?? 0,
    });
    this.policy = o.policy ?? defaultPolicy(c);
    this.k = effectiveTopK(c, this.policy);
    this.setPolicy(this.policy);
  }

  /** What-if controls for this layer (uniform values; the ablation mask lives in RoutingStats.setAblation). */
  setPolicy(policy: RoutingPolicy): void {
    validatePolicy(this.config, policy);
    this.policy = policy;
    this.k = effectiveTopK(this.config, policy);
    Object.assign(this.values, {
      top_k: this.k,
      noise_seed: policy.noiseSeed >>> 0,
      noise_std: policy.noiseStd,
      inv_temp: 1 / policy.temperature,
    });
    this.params.set(this.values);
  }

  /** Expert kernels used for a step of T tokens. */
  modeFor(T: number): ExpertVariant {
    if (this.expertMode !== 'auto') return this.expertMode;
    const rows = (T * this.k) / this.config.numExperts;
    return rows <= 16 ? 'gemv' : rows <= 96 ? 'tiled-narrow' : 'tiled';
  }

  /** Whether a step of T tokens runs the down projection fused with the combine (moe_down_combine). */
  fusedDown(T: number): boolean {
    return this.downCombine !== null && T <= FUSED_DOWN_TOKENS;
  }

  /** Dispatches encode() records for T tokens. */
  dispatchCount(T: number): number {
    const rerouting = this.policy.overflow === 'reroute' && expertCapacity(this.policy.capacityFactor, T, this.k, this.config.numExperts) > 0;
    const banks = this.weights.gateUp.buffers.length + this.weights.down.buffers.length;
    const plan = this.router.plansFor(T, rerouting) ? 0 : T > PLAN_SPLIT_TOKENS ? 2 : 1;
    const combine = this.fusedDown(T) ? 0 : 1;
    // + 1: the scatter
    return MoeRouterKernel.dispatchCount(T) + (rerouting ? 1 : 0) + plan + 1 + banks + combine + (this.config.sharedExpert ? 2 : 0);
  }

  /**
   * x: f32 [T, H] post-norm input; out: f32 [T, H], the layer's output or, with options.residualScale, the residual
   * stream it is added to (must not alias x unless options.inputNorm; both sized in whole 16-byte units, as
   * storageBuffer makes them).
   * Tokens are at positions
   * [position, position + T). Records into `target`: a compute pass, or a command encoder (one pass is opened; with
   * `timing`, one pass per kernel named `Layer<l>.moe.<kernel>` with that pass's timestamp descriptor, for
   * per-kernel GPU times).
   */
  encode(
    target: GPUComputePassEncoder | GPUCommandEncoder,
    x: GPUBuffer,
    out: GPUBuffer,
    T: number,
    position: number,
    timing?: PassTimestamps,
  ): void {
    const sink = this.sink(target, timing);
    this.routing(sink.emit, x, out, T, position);
    this.experts(sink.emit, x, out, T);
    this.combineInto(sink.emit, x, out, T);
    sink.end();
  }

  /** Router, optional re-route, plan and scatter: everything before the expert matmuls (also writes the uniform). */
  encodeRouting(pass: GPUComputePassEncoder, x: GPUBuffer, out: GPUBuffer, T: number, position: number): void {
    this.routing((_name, record) => record(pass), x, out, T, position);
  }

  /**
   * The grouped expert matmuls (and the shared expert). Call after encodeRouting for the same step. When the step
   * fuses the down projection (fusedDown), only the gate/up half and the shared expert.
   */
  encodeExperts(pass: GPUComputePassEncoder, x: GPUBuffer, out: GPUBuffer, T: number): void {
    this.experts((_name, record) => record(pass), x, out, T);
  }

  /** The weighted gather into `out` (when the step fuses the down projection, that projection with the gather). */
  encodeCombine(pass: GPUComputePassEncoder, x: GPUBuffer, out: GPUBuffer, T: number): void {
    this.combineInto((_name, record) => record(pass), x, out, T);
  }

  private combineInto(emit: Emit, x: GPUBuffer, out: GPUBuffer, T: number): void {
    const io = this.io(x, out);
    if (this.fusedDown(T)) {
      const H = this.config.hiddenSize;
      io.downCombine.forEach((b, i) => emit(`downCombine${i}`, (pass) => this.downCombine!.encode(pass, b, H, T)));
    } else {
      emit('combine', (pass) => this.combine.encode(pass, io.combine, T));
    }
  }

  private sink(target: GPUComputePassEncoder | GPUCommandEncoder, timing?: PassTimestamps): { emit: Emit; end: () => void } {
    if ('dispatchWorkgroups' in target) return { emit: (_name, record) => record(target), end: () => {} };
    const encoder = target as GPUCommandEncoder;
    const label = `Layer${this.layer}.moe`;
    if (timing) {
      return {
        emit: (name, record) => {
          const pass = encoder.beginComputePass(timing.passDescriptor(`${label}.${name}`));
          record(pass);
          pass.end();
        },
        end: () => {},
      };
    }
    const pass = encoder.beginComputePass({ label });
    return { emit: (_name, record) => record(pass), end: () => pass.end() };
  }

  private routing(emit: Emit, x: GPUBuffer, out: GPUBuffer, T: number, position: number): void {
    this.gpu.assertAlive();
    const max = this.scratch.shape;
    if (!Number.isInteger(T) || T < 1 || T > max.maxTokens) throw new RangeError(`Layer${this.layer}.moe: ${T} tokens; the scratch holds 1..${max.maxTokens}`);
    if (this.k > max.maxK) throw new RangeError(`Layer${this.layer}.moe: k = ${this.k} but the scratch has room for ${max.maxK} experts per token`);
    const E = this.config.numExperts;
    const capacity = expertCapacity(this.policy.capacityFactor, T, this.k, E);
    const rerouting = this.policy.overflow === 'reroute' && capacity > 0;
    const mode = this.modeFor(T);
    const step = this.step;
    step.tokens = T;
    step.position = position;
    step.capacity = capacity;
    step.reroute_ran = rerouting ? 1 : 0;
    step.tile_m = this.modes[mode].up.tileRowsFor(T);
    this.params.set(step);
    const io = this.io(x, out);
    const planned = this.router.plansFor(T, rerouting);
    emit('router', (pass) => this.router.encode(pass, io.router, T, E, this.config.sharedExpert?.gated === true, planned));
    if (rerouting) emit('reroute', (pass) => this.reroute.encode(pass, this.fixedGroups.reroute));
    if (!planned) emit('plan', (pass) => this.plan.encode(pass, this.fixedGroups.plan, T));
    emit('scatter', (pass) => this.scatter.encode(pass, this.fixedGroups.scatter, T));
  }

  private experts(emit: Emit, x: GPUBuffer, out: GPUBuffer, T: number): void {
    const c = this.config;
    const mode = this.modeFor(T);
    const pair = this.io(x, out).modes[mode];
    const rows = pair.up.tileRowsFor(T);
    const tiles = Math.min(this.scratch.planLayout.maxTiles, maxPlanTiles(T * this.k, c.numExperts, rows, T));
    pair.upBindings.forEach((b, i) => emit(`gateUp${i}`, (pass) => pair.up.encode(pass, b, c.moeIntermediateSize, tiles, rows)));
    if (!this.fusedDown(T)) pair.downBindings.forEach((b, i) => emit(`down${i}`, (pass) => pair.down.encode(pass, b, c.hiddenSize, tiles, rows)));
    if (pair.sharedUp && pair.sharedDown) {
      this.scratch.prepareDensePlan(T, rows);
      const sharedTiles = Math.ceil(T / rows);
      const up = pair.sharedUp;
      const down = pair.sharedDown;
      emit('sharedGateUp', (pass) => pair.up.encode(pass, up, c.sharedExpert!.intermediateSize, sharedTiles, rows));
      emit('sharedDown', (pass) => pair.down.encode(pass, down, c.hiddenSize, sharedTiles, rows));
    }
  }

  /** Bind groups that depend on the step's x and out buffers: made on first use, then cached. */
  private io(x: GPUBuffer, out: GPUBuffer): IoGroups {
    let byOut = this.ioGroups.get(x);
    if (!byOut) this.ioGroups.set(x, (byOut = new Map()));
    let g = byOut.get(out);
    if (!g) {
      const s = this.scratch;
      const label = `Layer${this.layer}.moe`;
      const w = this.weights;
      g = {
        router: this.router.bind(`${label}.router`, {
          params: this.params, x, router: w.router, sharedGate: w.shared?.gate ?? s.dummy, aux: this.aux,
          ablated: this.stats.ablation, records: s.records, probs: s.probs, plan: s.plan, stats: this.stats.buffers,
          ...(this.inputNorm ? { norm: { weight: this.inputNorm.weight, normed: this.inputNorm.normed } } : {}),
        }),
        combine: this.combine.bind(`${label}.combine`, {
          params: this.params, records: s.records, y: s.y, sharedY: this.config.sharedExpert ? s.sharedY : s.dummy, out,
        }),
        downCombine: this.bindDownCombine(out),
        modes: Object.fromEntries(VARIANTS.map((v) => {
          const m = this.modes[v];
          return [v, this.bindExperts({ up: m.up, down: m.down, sharedUp: m.sharedKernels.up, sharedDown: m.sharedKernels.down }, this.inputNorm?.normed ?? x)];
        })) as Record<ExpertVariant, ExpertPair>,
      };
      byOut.set(out, g);
    }
    return g;
  }

  /** The fused down projection + combine over each down-weight buffer, the first one leading (none when not fused). */
  private bindDownCombine(out: GPUBuffer): DownCombineBinding[] {
    const k = this.downCombine;
    if (!k) return [];
    const s = this.scratch;
    const w = this.weights;
    const buffers = {
      params: this.params, records: s.records, h: s.h, plan: s.plan, planLayout: s.planLayout, bias: w.downBias ?? null,
      sharedY: this.config.sharedExpert ? s.sharedY : s.dummy, out,
    };
    return w.down.buffers.map((weights, i) => k.bind(`Layer${this.layer}.moe.downCombine${i}`, { ...buffers, weights },
      { hidden: this.config.hiddenSize, ...bankSlice(w.down, i, this.config.numExperts) }, i === 0));
  }

  /** Bindings of the expert kernels over every weight buffer (x = null: kernels only, no bindings yet). */
  private bindExperts(k: ExpertKernels, x: GPUBuffer | null): ExpertPair {
    const pair: ExpertPair = {
      up: k.up, down: k.down, upBindings: [], downBindings: [], sharedUp: null, sharedDown: null,
      sharedKernels: { up: k.sharedUp, down: k.sharedDown },
    };
    if (!x) return pair;
    const c = this.config;
    const s = this.scratch;
    const w = this.weights;
    const E = c.numExperts;
    const H = c.hiddenSize;
    const I = c.moeIntermediateSize;
    const label = `Layer${this.layer}.moe.${k.up.mode}${k.up.mode === 'tiled' ? k.up.tileRowsFor(0) : ''}`;
    // Biases are indexed by global expert, so every split binding reads the layer's whole bias buffer.
    const bias = (b: GPUBuffer | null | undefined) => (b ? { buffer: b, experts: E } : null);
    const maxTokens = s.shape.maxTokens;
    const up = { bias: bias(w.gateUpBias), activation: c.expertActivation, maxTokens };
    w.gateUp.buffers.forEach((buf, i) => {
      pair.upBindings.push(k.up.bind(`${label}.gateUp${i}`, x, s.plan, s.planLayout, buf, s.h, { k: H, n: I, ...bankSlice(w.gateUp, i, E) }, up));
    });
    w.down.buffers.forEach((buf, i) => {
      pair.downBindings.push(k.down.bind(`${label}.down${i}`, s.h, s.plan, s.planLayout, buf, s.y, { k: I, n: H, ...bankSlice(w.down, i, E) }, { bias: bias(w.downBias), maxTokens }));
    });
    if (w.shared && c.sharedExpert) {
      const Is = c.sharedExpert.intermediateSize;
      const one = { firstExpert: 0, numExperts: 1 };
      pair.sharedUp = k.sharedUp.bind(`${label}.sharedGateUp`, x, s.densePlan, s.densePlanLayout, w.shared.gateUp, s.sharedH, { k: H, n: Is, ...one }, { maxTokens });
      pair.sharedDown = k.sharedDown.bind(`${label}.sharedDown`, s.sharedH, s.densePlan, s.densePlanLayout, w.shared.down, s.sharedY, { k: Is, n: H, ...one }, { maxTokens });
    }
    return pair;
  }

  destroy(): void {
    this.aux.destroy();
    this.router.destroy();
  }
}

/** The experts buffer i of a bank of E holds. */
function bankSlice(b: ExpertBank, i: number, E: number): { firstExpert: number; numExperts: number } {
  return { firstExpert: i * b.expertsPerBuffer, numExperts: Math.min(b.expertsPerBuffer, E - i * b.expertsPerBuffer) };
}

function validateLayer(c: MoeConfig, o: MoeLayerOptions): void {
  const where = `Layer${o.layer}.moe (${c.source})`;
  const E = c.numExperts;
  const r = c.router;
  if (!(E >= 1 && E <= 256)) throw new RangeError(`${where}: numExperts ${E} must be in [1, 256]`);
  if (!(r.topK >= 1 && r.topK <= K_MAX && r.topK <= E)) throw new RangeError(`${where}: router.topK ${r.topK} must be in [1, min(8, numExperts)]`);
  if (r.nGroup > 1) {
    if (E % r.nGroup !== 0 || r.nGroup > 64) throw new RangeError(`${where}: router.nGroup ${r.nGroup} must divide numExperts ${E} and be ≤ 64`);
    if (!(r.topkGroup >= 1 && r.topkGroup <= r.nGroup)) throw new RangeError(`${where}: router.topkGroup ${r.topkGroup} must be in [1, nGroup]`);
    if (r.scoring === 'sigmoid' && E / r.nGroup < 2) throw new RangeError(`${where}: top-2 group scores need ≥ 2 experts per group`);
  }
  if (r.hasBias && !o.weights.routerBias) throw new RangeError(`${where}: config.router.hasBias but weights.routerBias is missing`);
  if (r.hasCorrectionBias && !o.weights.correctionBias) throw new RangeError(`${where}: config.router.hasCorrectionBias but weights.correctionBias is missing`);
  if (c.expertBias && !(o.weights.gateUpBias && o.weights.downBias)) throw new RangeError(`${where}: config.expertBias but weights.gateUpBias / downBias are missing`);
  if (c.sharedExpert && !o.weights.shared) throw new RangeError(`${where}: config.sharedExpert is set but weights.shared is missing`);
  if (c.sharedExpert?.gated && !o.weights.shared?.gate) throw new RangeError(`${where}: gated shared expert needs weights.shared.gate`);
  for (const [name, bank] of [['gateUp', o.weights.gateUp], ['down', o.weights.down]] as const) {
    if (bank.buffers.length * bank.expertsPerBuffer < E) {
      throw new RangeError(`${where}: weights.${name} holds ${bank.buffers.length} × ${bank.expertsPerBuffer} experts, fewer than ${E}`);
    }
  }
  const s = o.scratch.shape;
  if (s.experts !== E || s.hidden !== c.hiddenSize || s.intermediate !== c.moeIntermediateSize ||
      s.sharedIntermediate !== (c.sharedExpert?.intermediateSize ?? 0)) {
    throw new RangeError(`${where}: scratch shape ${JSON.stringify(s)} does not match the config`);
  }
}

/** Applies a what-if policy to every MoE layer and to the shared ablation mask (uniform and queue writes only). */
export function applyRoutingPolicy(policy: RoutingPolicy, layers: readonly MoeLayer[], stats: RoutingStats): void {
  for (const layer of layers) layer.setPolicy(policy);
  stats.setAblation(policy.ablated);
}
