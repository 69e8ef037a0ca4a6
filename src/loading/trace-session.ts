// Replaying a trace in the dashboard: a read-only ModelSession over a token range of a trace. It owns a routing
// record (RoutingStats: the same GPU buffers a running model fills) and writes into it, through the queue, what the
// trace says for the current position: cumulative counts and gate sums from the trace's timeline, the last
// token's counts, and ring rows (chosen = assigned experts, gate weights) for positions inside the ring. Every view that
// reads a live session's buffers reads these unchanged. Unknown positions (−1: prefix-cached, never forwarded) are
// left out of the counts and stored as NO_EXPERT. Nothing is run: generate() and what-if policies are refused.
import type { Gpu } from '../engine/gpu';
import { RoutingStats, ringCapacityFor } from '../engine/routing/stats';
import type { ModelSession, RoutingPolicy, RoutingSnapshot } from '../engine/session-api';
import type { RoutingBuffers } from '../engine/routing-buffers';
import { countParameters, type ParameterCounts } from '../model/config';
import { K_MAX, NO_EXPERT } from '../model/limits';
import { UNKNOWN } from '../trace/format';
import type { TraceFile } from '../trace/reader';
import { TraceTimeline, type TimelineState } from '../trace/timeline';

/**
 * Token positions whose per-token routing (heatmap rows, token colours and paths) the replay keeps in the ring; the
 * cumulative views cover every position. Every snapshot copies the ring, so it is kept short for scrubbing.
 */
export const REPLAY_RING_TOKENS = 256;

export interface TraceRange {
  /** First token of the range (index into the trace). */
  start: number;
  /** Tokens in the range. */
  length: number;
}

export class TraceSession implements ModelSession {
  readonly parameters: ParameterCounts;
  private readonly stats: RoutingStats;
  /** Tokens replayed so far; `tokens` materialises their ids on demand. */
  private count = 0;
  private idsCache: number[] | null = null;
  private base: TimelineState | null = null;
  /** The range the next reset() switches to (selectRange). */
  private pending: TraceRange | null = null;
  /** u32 [moeLayers, experts] counts of the range's tokens [0, position). */
  private current: Uint32Array;
  /** Decoder layer of each MoE row of the trace. */
  private readonly moe: number[];

  private constructor(
    readonly gpu: Gpu,
    readonly trace: TraceFile,
    readonly timeline: TraceTimeline,
    private currentRange: TraceRange,
    /** Token ids of the range (−1 where the source has none). */
    private ids: Int32Array,
  ) {
    const c = trace.config;
    this.parameters = countParameters(c);
    this.moe = trace.meta.moeLayers;
    this.current = new Uint32Array(this.moe.length * c.numExperts);
    const budget = ringCapacityFor(c.numLayers, c.numExperts, 64 * 2 ** 20, gpu.limits.maxStorageBufferBindingSize);
    this.stats = new RoutingStats(gpu, c, { ringCapacity: Math.max(1, Math.min(trace.meta.numTokens, budget, REPLAY_RING_TOKENS)) });
  }

  /**
   * Opens a replay of `range` (default: the whole trace). The timeline's checkpoint interval keeps its copies of
   * the counts within ~64 MiB, so the state at any position costs one short read.
   */
  static async open(gpu: Gpu, trace: TraceFile, range?: TraceRange, onProgress?: (done: number, total: number) => void): Promise<TraceSession> {
    const m = trace.meta;
    if (m.countSteps > 0) throw new Error(`${trace.name}: a counts-only trace (${m.countSteps} steps, no per-token records) cannot be replayed token by token; use moescope report`);
    if (m.topK > K_MAX) throw new Error(`${trace.name}: field "topK": ${m.topK} experts per token; the dashboard's routing record holds at most ${K_MAX}`);
    const r = range ?? { start: 0, length: m.numTokens };
    const perCheckpoint = m.moeLayers.length * m.numExperts * 4 * (m.recorded.weights ? 2 : 1);
    const interval = Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(1, (m.numTokens * perCheckpoint) / (64 * 2 ** 20)))));
    const timeline = await TraceTimeline.build(trace, { interval, onProgress });
    const s = new TraceSession(gpu, trace, timeline, r, new Int32Array(0));
    s.selectRange(r);
    await s.reset();
    return s;
  }

  /** A replay has no KV cache: it holds exactly the range's tokens. */
  get contextLength(): number {
    return this.currentRange.length;
  }

  /** The token range replayed: positions count from its start. */
  get range(): TraceRange {
    return this.currentRange;
  }

  /** Token ids of the range (−1 where the source has none). */
  get rangeIds(): Int32Array {
    return this.ids;
  }

  /** Replay another range (a request, or the whole trace) from the next reset() on. */
  selectRange(r: TraceRange): void {
    const T = this.trace.meta.numTokens;
    if (!Number.isInteger(r.start) || !Number.isInteger(r.length) || r.start < 0 || r.length < 0 || r.start + r.length > T) {
      throw new RangeError(`${this.trace.name}: range [${r.start}, ${r.start + r.length}) outside the ${T} tokens`);
    }
    this.pending = r;
  }

  get config() {
    return this.trace.config;
  }

  get routing(): RoutingBuffers {
    return this.stats.buffers;
  }

  get tokens(): readonly number[] {
    return (this.idsCache ??= Array.from(this.rangeIds.subarray(0, this.count)));
  }

  get position(): number {
    return this.count;
  }

  setPolicy(policy: RoutingPolicy): void {
    // A trace is what the source routed: the ablation mask is kept for the view, nothing is re-routed.
    this.stats.setAblation(policy.ablated);
  }

  async feed(ids: number[]): Promise<void> {
    const from = this.position, to = from + ids.length;
    if (to > this.currentRange.length) throw new RangeError(`the trace's range ends at ${this.currentRange.length} tokens (at ${from}, ${ids.length} more asked)`);
    await this.moveTo(to);
    await this.writeRing(from, to);
  }

  async generate(): Promise<number> {
    throw new Error('a trace replays the tokens it recorded; nothing can be generated (switch to scan mode)');
  }

  async back(n: number): Promise<void> {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`back(${n}): n must be a non-negative integer`);
    await this.moveTo(Math.max(0, this.position - n));
  }

  async reset(): Promise<void> {
    if (this.pending) {
      const r = this.pending;
      this.pending = null;
      this.currentRange = r;
      this.ids = await this.trace.tokenIds(r.start, r.length);
      this.base = await this.timeline.stateAt(r.start);
      this.current.fill(0);
      this.count = 0;
    }
    await this.moveTo(0);
  }

  /** Cumulative buffers for `position` tokens of the range; stepCounts hold the last token's (the "current token"). */
  private async moveTo(position: number): Promise<void> {
    const { start } = this.currentRange;
    const state = await this.timeline.stateAt(start + position);
    const counts = state.counts.map((c, i) => c - this.base!.counts[i]);
    const step = position > 0 ? await this.timeline.loadsBetween(start + position - 1, start + position) : new Uint32Array(counts.length);
    const gate = state.gateSum ? state.gateSum.map((g, i) => g - this.base!.gateSum![i]) : null;
    this.current = counts;
    this.count = position;
    this.idsCache = null;
    const q = this.gpu.device.queue, b = this.stats.buffers, E = this.config.numExperts;
    q.writeBuffer(b.counts, 0, this.allLayers(counts, E, Uint32Array));
    q.writeBuffer(b.stepCounts, 0, this.allLayers(step, E, Uint32Array));
    q.writeBuffer(b.gateSum, 0, this.allLayers(gate ?? new Float32Array(counts.length), E, Float32Array));
  }

  /** [moeLayers, n] → [layers, n] with dense layers zero. */
  private allLayers<A extends Uint32Array | Float32Array>(rows: A, n: number, make: new (len: number) => A): A {
    const out = new make(this.config.numLayers * n);
    this.moe.forEach((l, m) => out.set(rows.subarray(m * n, (m + 1) * n), l * n));
    return out;
  }

  /** Ring rows for positions [from, to) that fall inside the ring. */
  private async writeRing(from: number, to: number): Promise<void> {
    const R = this.stats.ringCapacity, end = Math.min(to, R);
    if (from >= end) return;
    const n = end - from, L = this.config.numLayers, K = this.trace.meta.topK, M = this.moe.length;
    const ids = await this.trace.experts(this.currentRange.start + from, n);
    const w = await this.trace.weights(this.currentRange.start + from, n);
    const chosen = new Uint32Array(n * L * K_MAX).fill(NO_EXPERT);
    const weights = new Float32Array(n * L * K_MAX);
    for (let t = 0; t < n; t++) {
      for (let m = 0; m < M; m++) {
        const src = (t * M + m) * K, dst = (t * L + this.moe[m]) * K_MAX;
        for (let k = 0; k < K; k++) {
          const e = ids[src + k];
          chosen[dst + k] = e === UNKNOWN ? NO_EXPERT : e;
          if (w) weights[dst + k] = w[src + k];
        }
      }
    }
    const q = this.gpu.device.queue, b = this.stats.buffers, at = from * L * K_MAX * 4;
    q.writeBuffer(b.ringChosen, at, chosen);
    q.writeBuffer(b.ringAssigned, at, chosen);
    q.writeBuffer(b.ringWeights, at, weights);
  }

  snapshot(): Promise<RoutingSnapshot> {
    return this.stats.snapshot(this.position);
  }

  destroy(): void {
    this.stats.destroy();
    void this.trace.close();
  }
}
