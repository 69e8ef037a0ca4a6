// A loaded model: weights on the GPU, the decoder, the routing record, the tokenizer, and the position bookkeeping
// for scanning a text, generating, and stepping back. Implements ModelSession (src/engine/session-api.ts).
//
// Per-token path: feed() writes token ids with queue writes, records one step and submits; it never maps a buffer.
// generate() reads the sampled id back (one u32) because the caller needs the token; snapshots read asynchronously.
import type { FormatGroupRow } from '../../model/weight-formats';
import type { Gpu } from '../gpu';
import { countParameters, type MoeConfig, type ParameterCounts } from '../../model/config';
import { Decoder } from './decoder';
import { AttentionProbe } from './attention-probe';
import { bindGroupBuffers, readBuffer, readF32, readU32 } from '../kernels/common';
import { SamplingKernel, type SamplingBinding } from '../kernels/sampling';
import { RoutingStats } from '../routing/stats';
import { defaultPolicy } from '../routing/policy';
import { Profiler, type PassTiming } from '../profiler';
import { DispatchProfiler, type DispatchTiming } from '../dispatch-profiler';
import type { ModelSession, ReplayStep, RoutingPolicy, RoutingSnapshot, SessionState, StepLogits, StepLogitsListener } from '../session-api';
import type { RoutingBuffers } from '../routing-buffers';
import type { Tokenizer } from '../../model/tokenizer';
import type { UploadedWeights } from './weights';

export type { ReplayStep, SessionState } from '../session-api';

/** The KV cache holds no more tokens: the caller stops with a message or slides the window (Session.slide). */
export class ContextFullError extends RangeError {
  constructor(
    readonly contextLength: number,
    readonly position: number,
    readonly requested: number,
  ) {
    super(`the context of ${contextLength} tokens is full (at ${position}, ${requested} more asked for)`);
    this.name = 'ContextFullError';
  }
}

/** Steps cut to cover the first `n` tokens (a step that straddles n is shortened). */
function truncateSteps(steps: readonly ReplayStep[], n: number): ReplayStep[] {
  const out: ReplayStep[] = [];
  let sum = 0;
  for (const s of steps) {
    if (sum >= n) break;
    const size = Math.min(s.size, n - sum);
    out.push({ size, policy: s.policy });
    sum += size;
  }
  return out;
}

export interface SamplingOptions {
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  seed: number;
}

export interface MemoryReport {
  module: string;
  bytes: number;
}

export class Session implements ModelSession {
  readonly parameters: ParameterCounts;
  readonly profiler: Profiler | null;
  /** With profile 'dispatch': every dispatch of a step timed in its own pass (profiler is then null). */
  readonly dispatchProfiler: DispatchProfiler | null;
  private readonly sampling: SamplingBinding;
  private readonly sampler: SamplingKernel;
  private ids: number[] = [];
  /** Submitted steps in order (sizes sum to position), with the policy each ran under: replayed after a lost device. */
  private steps: ReplayStep[] = [];
  private policy: RoutingPolicy;
  /** Generated-token counter mixed into the sampling seed. */
  private drawn = 0;
  private logitsListener: StepLogitsListener | null = null;
  /** MAP_READ u32 [1] (16 bytes): the sampled id, read back by every generate() (made once, not per token). */
  private readonly idReadback: GPUBuffer;
  /** Free MAP_READ buffers of [maxTokensPerStep, vocab] f32 for logits read-backs (reused; more only while busy). */
  private readonly logitsStaging: GPUBuffer[] = [];

  /** Format, parameters and bytes per tensor group of the loaded weights (set by the loader; empty if unknown). */
  weightFormats: readonly FormatGroupRow[] = [];
  /**
   * Milliseconds per phase of the load, in order, as src/loading measured them: read (config, headers), plan (the
   * pipelines listed, their compiling started), upload (weights), pipelines (compiling still left after the upload),
   * build (decoder and session).
   */
  loadPhases: Record<string, number> = {};

  constructor(
    readonly gpu: Gpu,
    readonly config: MoeConfig,
    readonly tokenizer: Tokenizer,
    readonly decoder: Decoder,
    readonly stats: RoutingStats,
    private readonly weights: UploadedWeights,
    /** true: one timed pass per module; 'dispatch': one per dispatch (DispatchProfiler). */
    profile: boolean | 'dispatch',
  ) {
    this.parameters = countParameters(config);
    this.profiler = profile === true ? new Profiler(gpu) : null;
    this.dispatchProfiler = profile === 'dispatch' ? new DispatchProfiler(gpu, weightReads(config, weights)) : null;
    this.sampler = new SamplingKernel(gpu);
    this.sampling = this.sampler.bind('Session.sample', decoder.act.logits, decoder.act.ids, config.vocabSize);
    this.policy = defaultPolicy(config);
    this.setPolicy(this.policy);
    this.idReadback = gpu.createBuffer({ label: 'Session.sampledId', size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  get routing(): RoutingBuffers {
    return this.stats.buffers;
  }

  get tokens(): readonly number[] {
    return this.ids;
  }

  get position(): number {
    return this.ids.length;
  }

  get maxTokensPerStep(): number {
    return this.decoder.options.maxTokensPerStep;
  }

  /** Token positions the KV cache holds. */
  get contextLength(): number {
    return this.decoder.options.maxSeq;
  }

  getPolicy(): RoutingPolicy {
    return this.policy;
  }

  setPolicy(policy: RoutingPolicy): void {
    this.decoder.setPolicy(policy);
    this.stats.setAblation(policy.ablated);
    this.policy = policy;
  }

  async feed(ids: number[]): Promise<void> {
    this.gpu.assertAlive();
    if (this.position + ids.length > this.contextLength) throw new ContextFullError(this.contextLength, this.position, ids.length);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary (${this.config.vocabSize})`);
    }
    const chunk = this.decoder.options.maxTokensPerStep;
    for (let at = 0; at < ids.length; at += chunk) {
      const part = ids.slice(at, at + chunk);
      const start = this.position;
      this.gpu.device.queue.writeBuffer(this.decoder.act.ids, start * 4, new Uint32Array(part));
      this.step(part.length, start);
      this.ids.push(...part);
      this.steps.push({ size: part.length, policy: this.policy });
      this.lastRow = part.length - 1;
      this.copyStepLogits(start, part);
    }
  }

  onStepLogits(fn: StepLogitsListener | null): void {
    this.logitsListener = fn;
  }

  /**
   * With a listener set: queue a copy of the step's logits rows ([ids.length, vocab] f32) into a staging buffer
   * and hand the listener the pending mapping. Nothing here waits for the GPU.
   */
  private copyStepLogits(start: number, ids: readonly number[]): void {
    const listener = this.logitsListener;
    if (!listener) return;
    const V = this.config.vocabSize;
    const bytes = ids.length * V * 4;
    const staging =
      this.logitsStaging.pop() ??
      this.gpu.createBuffer({
        label: 'Session.logitsReadback',
        size: this.decoder.options.maxTokensPerStep * V * 4,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
    const encoder = this.gpu.device.createCommandEncoder({ label: 'Session.logitsReadback' });
    encoder.copyBufferToBuffer(this.decoder.act.logits, 0, staging, 0, bytes);
    this.gpu.device.queue.submit([encoder.finish()]);
    const pending = staging.mapAsync(GPUMapMode.READ, 0, bytes).then((): StepLogits => {
      const logits = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
      this.logitsStaging.push(staging);
      return { start, ids: Uint32Array.from(ids), logits };
    });
    listener(pending);
  }

  /**
   * Feeds `ids` like feed() and returns every fed token's logits, [ids.length, vocab]: row t predicts the token after
   * ids[t]. Reads the logits back once per step.
   */
  async feedWithLogits(ids: number[]): Promise<Float32Array> {
    const V = this.config.vocabSize;
    const out = new Float32Array(ids.length * V);
    const chunk = this.decoder.options.maxTokensPerStep;
    for (let at = 0; at < ids.length; at += chunk) {
      const part = ids.slice(at, at + chunk);
      await this.feed(part);
      out.set(await this.stepLogits(), at * V);
    }
    return out;
  }

  /**
   * Records and submits one step of T tokens whose ids are in the ids buffer when it runs: already, or written by
   * what `first` records ahead of it in the same command buffer (the sampling of a generated token).
   */
  private step(T: number, start: number, first?: (encoder: GPUCommandEncoder) => void): void {
    const encoder = this.gpu.device.createCommandEncoder({ label: 'Session.step' });
    first?.(encoder);
    const timer = this.profiler ?? this.dispatchProfiler;
    timer?.beginStep(T);
    if (this.dispatchProfiler) this.decoder.encodeStep(this.dispatchProfiler.wrap(encoder), T, start);
    else this.decoder.encodeStep(encoder, T, start, this.profiler ?? undefined);
    timer?.resolve(encoder);
    this.gpu.device.queue.submit([encoder.finish()]);
    if (timer) void timer.collect();
  }

  /** Logits of the last processed token, [vocab] (reads back; for the CLI and tests). */
  async lastLogits(): Promise<Float32Array> {
    if (this.position === 0) throw new Error('no token processed yet');
    const V = this.config.vocabSize;
    const row = this.lastRow;
    return (await readF32(this.gpu, this.decoder.act.logits, (row + 1) * V)).subarray(row * V);
  }

  /** Logits rows of the most recent step, [rows, vocab]. */
  async stepLogits(): Promise<Float32Array> {
    const V = this.config.vocabSize;
    const rows = this.lastRow + 1;
    return readF32(this.gpu, this.decoder.act.logits, rows * V);
  }

  /** Row of the logits buffer holding the last token's logits (the last step's last row). */
  private lastRow = 0;

  async generate(sampling: SamplingOptions = { temperature: 0, topP: 1, seed: 0 }): Promise<number> {
    this.gpu.assertAlive();
    if (this.position === 0) throw new Error('generate needs at least one token of context');
    if (this.position >= this.contextLength) throw new ContextFullError(this.contextLength, this.position, 1);
    const start = this.position;
    this.sampleAndStep(sampling, start);
    const encoder = this.gpu.device.createCommandEncoder({ label: 'Session.sampledId' });
    encoder.copyBufferToBuffer(this.sampling.result, 0, this.idReadback, 0, 4);
    this.gpu.device.queue.submit([encoder.finish()]);
    await this.idReadback.mapAsync(GPUMapMode.READ, 0, 4);
    const id = new Uint32Array(this.idReadback.getMappedRange(0, 4))[0];
    this.idReadback.unmap();
    this.ids.push(id);
    this.steps.push({ size: 1, policy: this.policy });
    this.copyStepLogits(start, [id]);
    return id;
  }

  /**
   * Samples from the last logits (written by the previous step) into ids[position] on the GPU, then records the step
   * of that one token after it: one command buffer, one submit, no readback.
   */
  private sampleAndStep(sampling: SamplingOptions, position: number): void {
    this.sampler.setStep(this.sampling, {
      row: this.lastRow,
      temperature: sampling.temperature,
      topP: sampling.topP,
      seed: sampling.seed,
      step: this.drawn++,
      appendAt: position,
    });
    this.step(1, position, (encoder) => {
      const pass = encoder.beginComputePass({ label: 'Session.sample' });
      this.sampler.encode(pass, this.sampling);
      pass.end();
    });
    this.lastRow = 0;
  }

  /**
   * Generates `n` tokens without a host round trip per token: each sampled id is appended to the ids buffer on the
   * GPU, where the next step reads it, so all n sample + step submits are recorded back to back and the ids are read
   * once at the end. Same ids as n calls of generate(); no stop on EOS (the caller can step back).
   */
  async generateMany(n: number, sampling: SamplingOptions = { temperature: 0, topP: 1, seed: 0 }): Promise<number[]> {
    this.gpu.assertAlive();
    if (this.position === 0) throw new Error('generate needs at least one token of context');
    if (this.position + n > this.contextLength) throw new ContextFullError(this.contextLength, this.position, n);
    const start = this.position;
    for (let i = 0; i < n; i++) this.sampleAndStep(sampling, start + i);
    const bytes = await readBuffer(this.gpu, this.decoder.act.ids, n * 4, start * 4);
    const ids = Array.from(new Uint32Array(bytes));
    this.ids.push(...ids);
    for (let i = 0; i < n; i++) this.steps.push({ size: 1, policy: this.policy });
    return ids;
  }

  async back(n: number): Promise<void> {
    this.gpu.assertAlive();
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`back(${n}): n must be a non-negative integer`);
    const target = Math.max(0, this.position - n);
    if (target === this.position) return;
    // Rewind to one token before the target and run that token again, so its logits are current for generate().
    const kept = this.ids.slice(0, target);
    const redo = target > 0 ? kept.pop()! : null;
    this.ids = kept;
    this.steps = truncateSteps(this.steps, kept.length);
    const encoder = this.gpu.device.createCommandEncoder({ label: 'Session.back' });
    this.stats.rebuild(encoder, this.position);
    this.gpu.device.queue.submit([encoder.finish()]);
    if (redo !== null) await this.feed([redo]);
  }

  /**
   * Slides the window when the context is full: keeps the last `keep` tokens and runs them again from position 0, so
   * the KV cache, RoPE positions and routing record restart from them (the record of the dropped tokens is gone).
   * Sampling keeps counting, so a seeded run stays reproducible across slides.
   */
  async slide(keep: number): Promise<void> {
    if (!Number.isInteger(keep) || keep < 1 || keep >= this.contextLength) {
      throw new RangeError(`slide(${keep}): keep must be an integer in [1, ${this.contextLength})`);
    }
    const kept = this.ids.slice(-keep);
    const drawn = this.drawn;
    await this.reset();
    this.drawn = drawn;
    await this.feed(kept);
  }

  /** What replay() needs to bring another session (e.g. on a re-created device) to this one's state. */
  get state(): SessionState {
    return { tokens: [...this.ids], steps: this.steps.map((s) => ({ ...s })), policy: this.policy, drawn: this.drawn };
  }

  /**
   * From position 0, runs `state`'s tokens in the same steps under the same policies, so the KV cache and the routing
   * record come out as they were (routing is deterministic for the same steps), and sampling continues where it was.
   */
  async replay(state: SessionState): Promise<void> {
    await this.reset();
    let at = 0;
    for (const step of state.steps) {
      if (step.policy !== this.policy) this.setPolicy(step.policy);
      await this.feed(state.tokens.slice(at, at + step.size));
      at += step.size;
    }
    this.setPolicy(state.policy);
    this.drawn = state.drawn;
  }

  async reset(): Promise<void> {
    this.steps = [];
    this.ids = [];
    this.lastRow = 0;
    this.drawn = 0;
    const encoder = this.gpu.device.createCommandEncoder({ label: 'Session.reset' });
    this.stats.reset(encoder);
    this.gpu.device.queue.submit([encoder.finish()]);
  }

  /** Records every later step's last-token attention weights until closed (the attention-flow view). */
  openAttentionProbe(): AttentionProbe {
    return new AttentionProbe(this.gpu, this.decoder.attentionProbeTargets());
  }

  snapshot(): Promise<RoutingSnapshot> {
    return this.stats.snapshot(this.position);
  }

  timings(): PassTiming[] {
    return this.profiler?.timings() ?? [];
  }

  /** With profile 'dispatch': each dispatch's mean GPU time since the profiler's last reset, in step order. */
  dispatchTimings(): DispatchTiming[] {
    return this.dispatchProfiler?.timings() ?? [];
  }

  /** GPU memory per module, bytes. */
  memory(): { module: string; bytes: number }[] {
    const routing = this.stats.allocatedBytes;
    return [
      { module: 'weights', bytes: this.weights.bytes },
      { module: 'KV cache', bytes: this.decoder.kvCacheBytes },
      { module: 'activations + MoE scratch', bytes: this.decoder.runtimeBytes - this.decoder.kvCacheBytes },
      { module: 'routing record', bytes: routing },
    ];
  }

  destroy(): void {
    const weightBuffers = new Set([...this.weights.buffers.values(), ...[...this.weights.banks.values()].flatMap((b) => b.buffers)]);
    for (const b of weightBuffers) b.destroy();
    this.logitsListener = null;
    for (const b of this.logitsStaging.splice(0)) b.destroy();
    this.idReadback.destroy();
    this.decoder.destroy();
    this.stats.destroy();
    this.profiler?.destroy();
    this.dispatchProfiler?.destroy();
  }
}

/**
 * Weight bytes a dispatch reads, from the weight buffers it binds: the whole of each, except an expert bank's share
 * (min(E, T·k) of E experts at a one-token step's T = 1, the expected share where a bank is split over buffers) and
 * the embedding gather (one row per token).
 */
function weightReads(config: MoeConfig, weights: UploadedWeights): (d: { pipeline: string }, groups: readonly GPUBindGroup[]) => number | null {
  const share = new Map<GPUBuffer, number>();
  for (const b of weights.buffers.values()) share.set(b, 1);
  const experts = Math.min(config.numExperts, config.router.topK) / config.numExperts;
  for (const bank of weights.banks.values()) for (const b of bank.buffers) share.set(b, experts);
  return (d, groups) => {
    let bytes: number | null = null;
    for (const b of groups.flatMap(bindGroupBuffers)) {
      const s = share.get(b);
      if (s === undefined) continue;
      bytes = (bytes ?? 0) + (d.pipeline.startsWith('embedding.') ? b.size / config.vocabSize : b.size * s);
    }
    return bytes;
  };
}
