// Token stepping over a ModelSession: scan (teacher-forced over a text) or generate (decode), forward, back,
// play/pause, reset. Engine calls are serialised through one queue so play, clicks and tests never interleave.
// Each processed position keeps the text it shows and the domain label it came from (for the load-bar split).
import type { ModelSession } from '../engine/session-api';
import type { SessionState } from '../engine/model/session';
import { alignTokens, labelAt, type LabelledSpan } from './align';

export interface TokenInfo {
  id: number;
  /** Text the token stands for, as the tokenizer decodes it (shown with textContent, never as HTML). */
  text: string;
  /** Domain label of the text it came from ('prompt' for typed text, 'generated' for decoded tokens). */
  domain: string;
  /** Finer label of the text (genre, language), when the sample has one. */
  genre?: string;
  /** Part of speech of the word the token starts in (prose samples with tagged words). */
  pos?: string;
}

/** Labels of a text beyond its domain. */
export interface TextLabels {
  genre?: string;
  posSpans?: LabelledSpan[];
}

export interface TokenTexts {
  encode(text: string): number[];
  /** Display text of one token id (byte-level pieces decoded; control characters made visible). */
  tokenText(id: number): string;
  /** Domain label of the i-th token of the last encoded text, where the source knows it (a trace's prompt / generated). */
  domainOf?(i: number): string;
}

export interface Sampling {
  temperature: number;
  topP: number;
  seed: number;
}

/** The tokens a stepper holds, to bring back on a new session (see TokenStepper.resume). */
export interface StepperTokens {
  plan: readonly TokenInfo[];
  processed: readonly TokenInfo[];
}

/** Steps over which play's delivered rate is measured. */
const PLAY_RATE_STEPS = 4;

export type StepListener = (kind: 'forward' | 'back' | 'reset' | 'plan') => void;

export class TokenStepper {
  /** Tokens of the current text (scan mode's plan). */
  private plan: TokenInfo[] = [];
  /** Tokens the session has processed, in order (position = processed.length). */
  readonly processed: TokenInfo[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private listeners = new Set<StepListener>();
  playing = false;
  mode: 'scan' | 'generate' = 'scan';
  /**
   * Scan steps re-run the text from its start, so the engine sees the same steps (windows of maxTokensPerStep
   * tokens) however the text is stepped: what per-step routing capacity needs to mean the same thing.
   */
  rerunSteps = false;
  speed = 4;
  sampling: Sampling = { temperature: 0.8, topP: 0.95, seed: 7 };
  /** Set when an engine call failed; playing stops. */
  onError: (e: unknown) => void = () => {};

  constructor(
    private readonly session: ModelSession,
    private readonly tokenizer: TokenTexts,
  ) {}

  get position(): number {
    return this.processed.length;
  }

  /** Tokens planned for scan mode (the whole text), processed or not. */
  get planned(): readonly TokenInfo[] {
    return this.plan;
  }

  onChange(fn: StepListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(kind: Parameters<StepListener>[0]): void {
    for (const fn of this.listeners) fn(kind);
  }

  /** Run `fn` after every earlier engine call has finished. */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Run any other engine call (snapshots, policy changes) in turn with the steps. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return this.enqueue(fn);
  }

  /**
   * Run the processed tokens again from position 0 (after a routing-policy change), as one teacher-forced feed,
   * so the view shows the same text routed under the new policy.
   */
  rerun(): Promise<void> {
    this.pause();
    return this.enqueue(async () => {
      const tokens = this.processed.slice();
      await this.session.reset();
      this.processed.length = 0;
      await this.feedBatch(tokens.map((t) => t.id));
      this.processed.push(...tokens);
      this.emit('forward');
    });
  }

  /**
   * Feed tokens after the processed ones as one batch, with the last token as a step of its own, so the engine's
   * last-step record (the grid's "current token") is that token's routing, as after single steps. Only for a session
   * that runs steps (maxTokensPerStep; a replayed trace records its last token itself), and not while capacity re-runs
   * the text: its steps are the fixed windows capacity is counted over.
   */
  private async feedBatch(ids: number[]): Promise<void> {
    const split = ids.length > 1 && !this.rerunSteps && this.session.maxTokensPerStep !== undefined;
    if (split) await this.session.feed(ids.slice(0, -1));
    if (ids.length > 0) await this.session.feed(split ? ids.slice(-1) : ids);
  }

  /** Waits for queued engine calls. */
  idle(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  /** Set the text to scan; resets the session (routing record and KV cache). */
  setText(text: string, domain: string, labels: TextLabels = {}, position = 0): Promise<void> {
    this.pause();
    return this.enqueue(async () => {
      const ids = this.tokenizer.encode(text);
      const pieces = ids.map((id) => this.tokenizer.tokenText(id));
      const offsets = labels.posSpans ? alignTokens(text, pieces) : [];
      this.plan = ids.map((id, i) => {
        const info: TokenInfo = { id, text: pieces[i], domain: this.tokenizer.domainOf?.(i) ?? domain };
        if (labels.genre) info.genre = labels.genre;
        const pos = labels.posSpans ? labelAt(text, offsets[i], labels.posSpans) : null;
        if (pos) info.pos = pos;
        return info;
      });
      await this.session.reset();
      this.processed.length = 0;
      this.emit('plan');
      // A restored position: one batched feed in the same turn of the queue, so panels draw once, at that position.
      const take = this.plan.slice(0, Math.min(position, this.session.contextLength));
      if (take.length === 0) return;
      await this.feedBatch(take.map((t) => t.id));
      for (const t of take) this.processed.push(t);
      this.emit('forward');
    });
  }

  /** Process `n` more tokens: the next tokens of the text (scan) or newly sampled ones (generate). */
  forward(n = 1): Promise<number> {
    return this.enqueue(async () => {
      let done = 0;
      if (this.mode === 'scan') {
        const ids = this.plan.slice(this.position, this.position + n);
        if (ids.length === 0) return 0;
        const limit = this.session.contextLength;
        const room = Math.max(0, limit - this.position);
        const take = ids.slice(0, room);
        if (take.length === 0) throw new Error(`the model's context (${limit} tokens) is full`);
        if (this.rerunSteps) {
          await this.session.reset();
          await this.session.feed([...this.processed, ...take].map((t) => t.id));
        } else await this.feedBatch(take.map((t) => t.id));
        // A loop, not push(...take): a replayed trace can move tens of thousands of tokens in one step.
        for (const t of take) this.processed.push(t);
        done = take.length;
      } else {
        for (let i = 0; i < n; i++) {
          if (this.position === 0) throw new Error('generate mode needs at least one token of text first');
          const id = await this.session.generate({ ...this.sampling, seed: this.sampling.seed + this.position });
          const info = { id, text: this.tokenizer.tokenText(id), domain: 'generated' };
          this.processed.push(info);
          // Generated text continues the plan, so stepping back and forward again replays it.
          this.plan = [...this.processed];
          done++;
        }
      }
      this.emit('forward');
      return done;
    });
  }

  /** Rewind `n` tokens (KV cache truncated, routing record rebuilt by the engine). */
  back(n = 1): Promise<number> {
    return this.enqueue(async () => {
      const k = Math.min(n, this.position);
      if (k === 0) return 0;
      if (this.rerunSteps) {
        await this.session.reset();
        const kept = this.processed.slice(0, this.position - k).map((t) => t.id);
        if (kept.length > 0) await this.session.feed(kept);
      } else await this.session.back(k);
      this.processed.length -= k;
      this.emit('back');
      return k;
    });
  }

  /** Back to position 0 (the text stays). */
  reset(): Promise<void> {
    this.pause();
    return this.enqueue(async () => {
      await this.session.reset();
      this.processed.length = 0;
      this.emit('reset');
    });
  }

  /** Step to an exact position (forward through the plan or back). */
  async seek(position: number): Promise<void> {
    const target = Math.max(0, Math.min(position, this.mode === 'scan' ? this.plan.length : this.position));
    if (target > this.position) await this.forward(target - this.position);
    else if (target < this.position) await this.back(this.position - target);
  }

  /** The plan and the processed tokens (generated ones included). */
  tokens(): StepperTokens {
    return { plan: this.plan.slice(), processed: this.processed.slice() };
  }

  /**
   * Bring this stepper's (new) session to `saved`'s tokens: the session's own replay of `state` (the same steps under
   * the same policies, so the same routing record, and sampling continuing where it was) where it has one, else the
   * tokens fed again.
   */
  resume(saved: StepperTokens, state: SessionState | undefined): Promise<void> {
    this.pause();
    return this.enqueue(async () => {
      this.plan = saved.plan.slice();
      this.processed.length = 0;
      this.emit('plan');
      if (state && this.session.replay) await this.session.replay(state);
      else {
        await this.session.reset();
        await this.feedBatch(saved.processed.map((t) => t.id));
      }
      for (const t of saved.processed) this.processed.push(t);
      this.emit('forward');
    });
  }

  /** Tokens per second play delivered over its last steps, or null before two steps (and while paused). */
  playRate: number | null = null;
  private playStarts: number[] = [];

  play(): void {
    if (this.playing) return;
    this.playing = true;
    this.playStarts = [];
    this.playRate = null;
    this.emit('forward');
    const tick = async () => {
      if (!this.playing) return;
      const started = performance.now();
      this.playStarts = [...this.playStarts.slice(-PLAY_RATE_STEPS), started];
      const n = this.playStarts.length;
      if (n >= 2) this.playRate = ((n - 1) * 1000) / (started - this.playStarts[0]);
      try {
        const moved = await this.forward(1);
        if (moved === 0) {
          this.pause();
          return;
        }
        // A step is delivered when the GPU has run it: play never queues steps ahead of the GPU, so the rate it
        // measures is the rate it shows.
        await this.session.gpu.device.queue.onSubmittedWorkDone();
      } catch (e) {
        this.pause();
        this.onError(e);
        return;
      }
      if (!this.playing) return;
      const wait = Math.max(0, 1000 / this.speed - (performance.now() - started));
      this.timer = setTimeout(tick, wait);
    };
    void tick();
  }

  pause(): void {
    const was = this.playing;
    this.playing = false;
    this.playRate = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (was) this.emit('forward');
  }
}
