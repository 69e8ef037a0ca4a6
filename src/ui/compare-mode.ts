// Compare mode: the other checkpoint of the same model (the demo model and its early checkpoint) runs on the same
// tokens after every snapshot, under the same routing policy, and a panel shows where their routing differs.
import type { RoutingSnapshot } from '../engine/session-api';
import { drawCompare } from '../viz/panels/compare';
import { relabelRing, routingAgreement } from '../viz/panels/stats';
import { alignCheckpoints, type CheckpointAlignment } from './compare-align';
import type { Dashboard } from './context';
import { el } from './dom';
import { guard, progress } from './messages';
import { compareCounterpart, type LoadedModel } from './models';
import { TraceSession, type TraceRange } from '../loading/trace-session';

const sameRange = (a: TraceRange, b: TraceRange) => a.start === b.start && a.length === b.length;

export type ModelLoader = (id: string, onProgress: (fraction: number, what: string) => void) => Promise<LoadedModel>;

export class CompareMode {
  /** The other checkpoint, while compare mode is on. */
  private other: LoadedModel | null = null;
  /** The other checkpoint's experts matched to the current model's, once "align experts by weights" asked for it. */
  alignment: CheckpointAlignment | null = null;
  private readonly align = el<HTMLInputElement>('compare-align');

  constructor(
    private readonly d: Dashboard,
    private readonly load: ModelLoader,
  ) {
    el('compare').addEventListener('click', () => void guard(() => this.toggle()));
    d.state.subscribe((kind) => {
      if (kind === 'model') this.stop();
      else if (kind === 'routing' && d.model) this.other?.session?.setPolicy(d.state.policy(d.model.config.router.topK));
    });
    d.snapshots.subscribe((s) => this.sync(s));
    this.align.addEventListener('change', () => d.snapshots.request());
  }

  /** The matching to compare through, computed once per compared pair when the option is on (else null). */
  private async matching(): Promise<CheckpointAlignment | null> {
    if (!this.align.checked || !this.d.model || !this.other) return null;
    if (!this.alignment) {
      el('compare-note').textContent = 'matching experts by their weights…';
      this.alignment = await alignCheckpoints(this.d.model, this.other);
    }
    return this.alignment;
  }

  /** The model to compare the current one with: the bundled counterpart checkpoint, or a second picked trace. */
  private counterpart(): { name: string; load: () => Promise<LoadedModel> } | null {
    const model = this.d.model;
    if (model?.compareWith) return { name: model.compareWith.name, load: () => model.compareWith!.load(progress) };
    const id = model ? compareCounterpart(model.id) : null;
    return id ? { name: id.slice(5), load: () => this.load(id, progress) } : null;
  }

  private stop(): void {
    this.other?.destroy();
    this.other = null;
    this.alignment = null;
    const model = this.d.model;
    const counterpart = this.counterpart();
    const button = el<HTMLButtonElement>('compare');
    button.disabled = counterpart === null || !model?.session;
    button.textContent = counterpart ? `compare with ${counterpart.name}` : 'compare';
    el<HTMLCanvasElement>('compare-canvas').hidden = true;
    el('compare-note').textContent = counterpart
      ? 'Runs the other checkpoint (or replays the other trace) on the same tokens and shows where their routing differs.'
      : 'Needs two checkpoints of one model (the bundled demo model and its early checkpoint, <name>-early), or two traces picked together.';
  }

  /** Load (or drop) the other checkpoint. */
  async toggle(): Promise<void> {
    const model = this.d.model;
    if (this.other) {
      this.stop();
      return;
    }
    const counterpart = this.counterpart();
    if (!model?.session || !counterpart) return;
    try {
      const loaded = await counterpart.load();
      if (!loaded.session || loaded.config.numLayers !== model.config.numLayers || loaded.config.numExperts !== model.config.numExperts) {
        loaded.destroy();
        throw new Error(`${loaded.name} does not have ${model.name}'s architecture: nothing to compare`);
      }
      loaded.session.setPolicy(this.d.state.policy(model.config.router.topK));
      this.other = loaded;
      el('compare').textContent = `stop comparing with ${loaded.name}`;
      this.d.snapshots.request();
    } finally {
      progress(null, '');
    }
  }

  /** Bring the other checkpoint to the same tokens (common prefix kept) and draw where routing differs. */
  private async sync(main: RoutingSnapshot): Promise<void> {
    const other = this.other;
    const stepper = this.d.stepper;
    const model = this.d.model;
    if (!other?.session || !stepper || !model) return;
    const session = other.session;
    // Two traces: the other replays the same token range (request) of its own file.
    if (session instanceof TraceSession && model.session instanceof TraceSession && !sameRange(session.range, model.session.range)) {
      session.selectRange(model.session.range);
      await session.reset();
    }
    const ids = stepper.processed.slice(0, main.position).map((t) => t.id);
    // A replayed trace is aligned by position (its ids are the other file's own); a running model by token ids.
    let common = 0;
    if (session instanceof TraceSession) common = Math.min(session.position, ids.length);
    else while (common < session.tokens.length && common < ids.length && session.tokens[common] === ids[common]) common++;
    if (common < session.tokens.length) await session.back(session.tokens.length - common);
    if (ids.length > common) await session.feed(ids.slice(common));
    const aligned = await this.matching();
    const snap = await session.snapshot();
    const agreement = routingAgreement(main, aligned ? relabelRing(snap, aligned.relabel) : snap, ids.length);
    const canvas = el<HTMLCanvasElement>('compare-canvas');
    canvas.hidden = false;
    drawCompare(canvas, {
      names: [model.name, other.name],
      perLayer: agreement.perLayer,
      perToken: agreement.perToken,
      labels: stepper.processed.slice(0, agreement.perToken.length / main.numLayers).map((t) => t.text),
      moeLayers: model.config.moeLayers,
    });
    el('compare-note').textContent =
      `${other.name} against ${model.name}. Blue: both checkpoints sent the token to the same experts; red: different ones.` +
      (aligned
        ? ` Experts aligned by weights (Hungarian matching on the cosine of W_down·W_up): ${aligned.moved} re-indexed; ` +
          `matched pairs' mean cosine ${aligned.meanMatched.toFixed(3)}, other pairs ${aligned.meanUnmatched.toFixed(3)}.`
        : ' Experts compared by index.');
  }
}
