// Cumulative routing counts of a trace at any token position, cheaply: one streaming pass at open stores the
// counts (and summed gate weights, where recorded) every `interval` tokens; the state at position p is the
// checkpoint below p plus at most interval − 1 tokens read from the file. Counts-only traces (step_counts) use
// steps as positions.
import type { TraceFile } from './reader';

export interface TimelineOptions {
  /** Tokens between checkpoints (default 1024). */
  interval?: number;
  /** Tokens read per request during the pass (default 8192). */
  chunkTokens?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The routing record's cumulative figures after `position` tokens (or steps). */
export interface TimelineState {
  position: number;
  /** u32 [moeLayers, experts]: assignments of tokens [0, position). */
  counts: Uint32Array;
  /** f32 [moeLayers, experts]: summed gate weights, or null when the trace has none. */
  gateSum: Float32Array | null;
  /** u32 [moeLayers]: tokens whose routing is known (not −1) in each layer. */
  known: Uint32Array;
}

export class TraceTimeline {
  /** Positions the timeline spans: tokens, or steps for counts-only traces. */
  readonly length: number;
  private constructor(
    private readonly trace: TraceFile,
    readonly interval: number,
    private readonly counts: Uint32Array[],
    private readonly gates: Float32Array[] | null,
    private readonly knowns: Uint32Array[],
    private readonly stepCounts: Uint32Array | null,
  ) {
    this.length = stepCounts ? trace.meta.countSteps : trace.meta.numTokens;
  }

  static async build(trace: TraceFile, options: TimelineOptions = {}): Promise<TraceTimeline> {
    const m = trace.meta;
    const L = m.moeLayers.length, E = m.numExperts, K = m.topK;
    const steps = await trace.stepCounts();
    if (steps) return new TraceTimeline(trace, 1, [], null, [], steps);
    const interval = options.interval ?? 1024;
    const chunk = Math.max(interval, Math.floor((options.chunkTokens ?? 8192) / interval) * interval);
    const counts = new Uint32Array(L * E), known = new Uint32Array(L);
    const gate = m.recorded.weights ? new Float64Array(L * E) : null;
    const cps: Uint32Array[] = [counts.slice()], gps: Float32Array[] | null = gate ? [new Float32Array(L * E)] : null, kps = [known.slice()];
    for (let at = 0; at < m.numTokens; at += chunk) {
      const n = Math.min(chunk, m.numTokens - at);
      const { ids, unknown } = await trace.storedExperts(at, n);
      const w = gate ? await trace.weights(at, n) : null;
      for (let t0 = 0; t0 < n; t0 += interval) {
        const t1 = Math.min(n, t0 + interval);
        const bad = accumulate(ids, unknown, w, t0, t1, L, E, K, counts, gate, known);
        if (bad >= 0) throw trace.badExpert(at, bad, ids[bad]);
        if ((at + t1) % interval === 0) {
          cps.push(counts.slice());
          gps?.push(Float32Array.from(gate!));
          kps.push(known.slice());
        }
      }
      options.onProgress?.(at + n, m.numTokens);
    }
    return new TraceTimeline(trace, interval, cps, gps, kps, null);
  }

  /** The cumulative state after `position` tokens (0 ≤ position ≤ length). */
  async stateAt(position: number): Promise<TimelineState> {
    const m = this.trace.meta;
    const L = m.moeLayers.length, E = m.numExperts, K = m.topK;
    if (!Number.isInteger(position) || position < 0 || position > this.length) {
      throw new RangeError(`${this.trace.name}: position ${position} outside [0, ${this.length}]`);
    }
    if (this.stepCounts) {
      const counts = new Uint32Array(L * E);
      for (let s = 0; s < position; s++) for (let i = 0; i < L * E; i++) counts[i] += this.stepCounts[s * L * E + i];
      return { position, counts, gateSum: null, known: new Uint32Array(L) };
    }
    const c = Math.floor(position / this.interval);
    const counts = this.counts[c].slice(), known = this.knowns[c].slice();
    const gate = this.gates ? Float64Array.from(this.gates[c]) : null;
    const from = c * this.interval, n = position - from;
    if (n > 0) {
      const { ids, unknown } = await this.trace.storedExperts(from, n);
      const w = gate ? await this.trace.weights(from, n) : null;
      const bad = accumulate(ids, unknown, w, 0, n, L, E, K, counts, gate, known);
      if (bad >= 0) throw this.trace.badExpert(from, bad, ids[bad]);
    }
    return { position, counts, gateSum: gate ? Float32Array.from(gate) : null, known };
  }

  /** u32 [moeLayers, experts] assignments of positions [from, to). */
  async loadsBetween(from: number, to: number): Promise<Uint32Array> {
    const [a, b] = await Promise.all([this.stateAt(from), this.stateAt(to)]);
    return b.counts.map((x, i) => x - a.counts[i]);
  }
}

/**
 * Adds tokens [t0, t1) of stored ids (`unknown` = not known) to the counts, gate sums and known-token counts.
 * Returns the slot of the first id ≥ E (the caller reports it), or −1. One tight loop: it runs over every slot of
 * the trace at open.
 */
function accumulate(
  ids: Uint8Array | Uint16Array | Int32Array, unknown: number, w: Float32Array | null, t0: number, t1: number,
  L: number, E: number, K: number, counts: Uint32Array, gate: Float64Array | null, known: Uint32Array,
): number {
  for (let t = t0; t < t1; t++) {
    for (let l = 0; l < L; l++) {
      const base = (t * L + l) * K, row = l * E;
      let any = 0;
      for (let k = 0; k < K; k++) {
        const e = ids[base + k];
        if (e === unknown) continue;
        if (e < 0 || e >= E) return base + k;
        any = 1;
        counts[row + e]++;
        if (gate !== null) gate[row + e] += w![base + k];
      }
      known[l] += any;
    }
  }
  return -1;
}
