// What the model predicted along the text: for every position, the next-token distribution after it (normaliser,
// top tokens, entropy) and the surprisal of the token that came next. Filled from the session's per-step logits
// read-back (ModelSession.onStepLogits), which never holds a step; full logits rows are kept for recent positions only.
import type { ModelSession, StepLogits } from '../engine/session-api';
import { summarizeRow, surprisal, type RowSummary } from '../viz/panels/predictions';

/** Top tokens kept per position. */
export const TOP_TOKENS = 8;
/** Full logits rows kept (most recent positions), for surprisal across steps and KL divergence. */
const KEPT_ROWS = 64;

export interface OutputCopy {
  surprisal: number[];
  next: (RowSummary | undefined)[];
  rows: Map<number, Float32Array>;
}

export class OutputRecord {
  /** [positions] surprisal in nats of the token at p given the tokens before it (NaN: unknown, and for p = 0). */
  readonly surprisal: number[] = [];
  /** [positions] the distribution of the token after position p. */
  readonly next: (RowSummary | undefined)[] = [];
  private readonly rows = new Map<number, Float32Array>();
  private readonly listeners = new Set<() => void>();
  private session: ModelSession | null = null;
  private vocab = 0;
  /** Bumped on clear(): read-backs of an older text are dropped. */
  private epoch = 0;
  private readonly inFlight = new Set<Promise<void>>();

  /** Resolves once the read-backs of the steps submitted so far are in. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  /** Follow a session's steps (or none). Returns false when the session cannot hand out logits. */
  attach(session: ModelSession | null): boolean {
    this.session?.onStepLogits?.(null);
    this.session = session;
    this.vocab = session?.config.vocabSize ?? 0;
    this.clear();
    if (!session?.onStepLogits) return false;
    session.onStepLogits((pending) => {
      const epoch = this.epoch;
      const taken = pending.then(
        (s) => void (epoch === this.epoch && this.take(s)),
        () => undefined, // the session was destroyed with a read-back in flight
      );
      this.inFlight.add(taken);
      void taken.then(() => this.inFlight.delete(taken));
    });
    return true;
  }

  clear(): void {
    this.epoch++;
    this.surprisal.length = 0;
    this.next.length = 0;
    this.rows.clear();
    this.emit();
  }

  /** Forget positions at and past `position` (after stepping back). */
  truncate(position: number): void {
    this.surprisal.length = Math.min(this.surprisal.length, position);
    this.next.length = Math.min(this.next.length, position);
    for (const p of this.rows.keys()) if (p >= position) this.rows.delete(p);
    this.emit();
  }

  /** The full logits row after position p, while it is among the recent ones kept. */
  row(p: number): Float32Array | undefined {
    return this.rows.get(p);
  }

  /** A frozen copy (the original policy's predictions, kept as a what-if's baseline). */
  copy(): OutputCopy {
    return { surprisal: [...this.surprisal], next: [...this.next], rows: new Map(this.rows) };
  }

  private take(s: StepLogits): void {
    const V = this.vocab;
    for (let r = 0; r < s.ids.length; r++) {
      const p = s.start + r;
      const row = s.logits.subarray(r * V, (r + 1) * V);
      const summary = summarizeRow(row, TOP_TOKENS);
      const before = this.rows.get(p - 1);
      const lseBefore = this.next[p - 1]?.logSumExp;
      while (this.surprisal.length <= p) this.surprisal.push(NaN);
      if (before && lseBefore !== undefined) this.surprisal[p] = surprisal(before, lseBefore, s.ids[r]);
      while (this.next.length <= p) this.next.push(undefined);
      this.next[p] = summary;
      this.rows.set(p, row);
    }
    for (const p of this.rows.keys()) if (p < s.start + s.ids.length - KEPT_ROWS) this.rows.delete(p);
    this.emit();
  }

  private emit(): void {
    for (const fn of this.listeners) fn();
  }
}
