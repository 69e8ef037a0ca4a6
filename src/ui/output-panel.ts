// The model's output beside its routing: the next-token distribution at the current position (the selected token,
// else the last one processed) and the surprisal of every token of the text, from the OutputRecord. Redrawn at most
// once per animation frame however many read-backs arrive.
import { visible } from '../viz/panels/heatmap';
import { drawNextTokens, type NextTokenData } from '../viz/panels/next-token';
import { klDivergence, rankOf } from '../viz/panels/predictions';
import { SurprisalChart } from '../viz/panels/surprisal';
import type { Dashboard } from './context';
import { el, onNextFrame } from './dom';

export class OutputPanel {
  private readonly chart: SurprisalChart;
  /** Draws so far (tests wait on it). */
  draws = 0;

  constructor(private readonly d: Dashboard) {
    this.chart = new SurprisalChart(el('surprisal'));
    this.d.output.onChange(() => this.schedule());
    d.baseline.onChange(() => this.schedule());
    d.state.subscribe((kind) => {
      if (kind === 'model') {
        const live = this.d.output.attach(d.model?.session ?? null);
        el('surprisal').hidden = !live;
        el('output-note').textContent = live ? '' : d.model?.session ? 'This session hands out no logits.' : 'Config only: the model does not run here, so it predicts nothing.';
      }
      if (kind === 'model' || kind === 'selection') this.schedule();
    });
    d.onStep((kind) => {
      const position = d.stepper?.position ?? 0;
      if (kind === 'plan') this.d.output.clear();
      else if (kind === 'back' || kind === 'reset') this.d.output.truncate(position);
      this.schedule();
    });
  }

  /** The position whose next-token distribution is shown: the selected token, else the last processed one. */
  position(): number {
    return this.d.state.selectedToken ?? (this.d.stepper?.position ?? 0) - 1;
  }

  private readonly schedule = onNextFrame(() => this.draw());

  private draw(): void {
    this.draws++;
    const stepper = this.d.stepper;
    const tokenizer = this.d.model?.tokenizer;
    // Labels are looked up on hover only: a replayed trace can hold a hundred thousand tokens.
    const processed = stepper?.processed ?? [];
    const bits = this.d.output.surprisal.slice(0, processed.length).map((s) => s / Math.LN2);
    this.chart.draw(bits, (p) => visible(processed[p]?.text ?? ''));
    drawNextTokens(el('next-token'), stepper && tokenizer ? this.nextTokens(this.position(), (id) => tokenizer.tokenText(id)) : null, 'Step through some tokens to see what the model predicts next.');
  }

  private nextTokens(p: number, text: (id: number) => string): NextTokenData | null {
    const stepper = this.d.stepper!;
    const summary = this.d.output.next[p];
    if (p < 0 || !summary) return null;
    const after = stepper.processed[p + 1] ?? (stepper.mode === 'scan' ? stepper.planned[p + 1] : undefined);
    let actual: NextTokenData['actual'] = null;
    if (after) {
      const row = this.d.output.row(p);
      const s = this.d.output.surprisal[p + 1];
      if (row) actual = { id: after.id, prob: Math.exp(row[after.id] - summary.logSumExp), rank: rankOf(row, after.id) };
      else if (Number.isFinite(s)) actual = { id: after.id, prob: Math.exp(-s), rank: null };
    }
    return {
      caption: `after "${visible(stepper.processed[p]?.text ?? '')}" (#${p}), the next token:`,
      top: summary.top,
      text,
      actual,
      entropy: summary.entropy,
      original: this.original(p),
    };
  }

  /** Position p under the original policy, while a what-if is on and the baseline covers p. */
  private original(p: number): NextTokenData['original'] {
    const base = this.d.baseline.current;
    const before = base && p < base.position ? base.output.next[p] : undefined;
    if (!base || !before) return undefined;
    const baseRow = base.output.rows.get(p);
    const row = this.d.output.row(p);
    return {
      probOf: (id) => (baseRow ? Math.exp(baseRow[id] - before.logSumExp) : (before.top.find((c) => c.id === id)?.prob ?? null)),
      kl: baseRow && row ? klDivergence(baseRow, row) : null,
      topId: before.top[0].id,
    };
  }
}
