// What a what-if changed: the original routing (the baseline) against the what-if's on the same tokens, as a
// tokens × layers diff map (blue: same experts, red: changed) with per-layer agreement, a summary line, and what the
// controls mean when they change nothing visible (router temperature) or apply per step (capacity).
import type { RoutingSnapshot } from '../engine/session-api';
import { drawCompare } from '../viz/panels/compare';
import { routingAgreement } from '../viz/panels/stats';
import type { Dashboard } from './context';
import { el } from './dom';

export class WhatIfPanel {
  /** Draws so far (tests wait on it). */
  draws = 0;

  constructor(private readonly d: Dashboard) {
    d.baseline.onChange(() => this.draw(d.snapshots.current));
    d.snapshots.subscribe((s) => this.draw(s));
    d.state.subscribe((kind) => {
      if (kind === 'model' || kind === 'routing') this.draw(d.snapshots.current);
    });
  }

  private draw(current: RoutingSnapshot | null): void {
    this.draws++;
    const model = this.d.model;
    const canvas = el<HTMLCanvasElement>('whatif-canvas');
    const summary = el('whatif-summary');
    const notes = el('whatif-notes');
    canvas.hidden = true;
    notes.replaceChildren();
    // A replayed trace routes nothing live: no what-if to compare, so no panel for one.
    el('whatif-panel').hidden = model?.replay != null;
    if (model?.replay) return;
    if (!model?.session) {
      summary.textContent = 'Config only: no routing to change.';
      return;
    }
    const topK = model.config.router.topK;
    const label = this.d.state.whatIfLabel(topK);
    for (const note of this.notes()) notes.append(Object.assign(document.createElement('div'), { className: 'note', textContent: note }));
    if (!label) {
      summary.textContent = 'No what-if on: the model routes as trained. Change k, noise, temperature or capacity, or ablate an expert: the original routing is kept here to compare with.';
      return;
    }
    const base = this.d.baseline.current;
    if (!base || !current) {
      summary.textContent = `What-if: ${label}. No original record to compare with: set what-ifs after stepping some tokens of the text.`;
      return;
    }
    const tokens = Math.min(base.position, current.position);
    const agreement = routingAgreement(base.routing, current, tokens);
    const L = model.config.numLayers;
    const moe = model.config.moeLayers;
    let changedRoutes = 0;
    let routes = 0;
    let changedTokens = 0;
    for (let p = 0; p < tokens; p++) {
      let any = false;
      for (let l = 0; l < L; l++) {
        if (!moe[l]) continue;
        routes++;
        if (agreement.perToken[p * L + l] < 1) {
          changedRoutes++;
          any = true;
        }
      }
      if (any) changedTokens++;
    }
    summary.textContent =
      `What-if: ${label}. Against the original routing of tokens 0–${tokens - 1}: ${changedRoutes} of ${routes} ` +
      `(token, layer) routes changed; ${changedTokens} of ${tokens} tokens use other experts in at least one layer.` +
      (current.position > base.position ? ` Tokens from ${base.position} on were stepped after the what-if began: no original for them.` : '');
    canvas.hidden = false;
    drawCompare(canvas, {
      names: ['original', 'what-if'],
      perLayer: agreement.perLayer,
      perToken: agreement.perToken,
      labels: (this.d.stepper?.processed ?? []).slice(0, tokens).map((t) => t.text),
      moeLayers: moe,
    });
  }

  /** What the active controls mean, where that is not visible on the grid. */
  private notes(): string[] {
    const p = this.d.state.params;
    const out: string[] = [];
    if (p.temperature !== 1) {
      out.push(
        `Router temperature ${p.temperature} divides the router logits before scoring. That keeps their order, so ` +
          `without noise the same top-k experts are chosen: counts and bars stay as they were; gate weights ` +
          `(heatmap, probability view) and so the output change${p.noiseStd > 0 ? '. With noise on, the noise weighs more at low temperature and can change choices' : ''}.`,
      );
    }
    if (p.capacityFactor > 0) {
      const window = this.d.model?.session?.maxTokensPerStep ?? 64;
      out.push(
        `Capacity applies per window of ${window} tokens from the start of the text (one engine step): each expert takes at ` +
          `most ⌈${p.capacityFactor} × tokens × k / experts⌉ of a window's tokens. While capacity is on, every scan step re-runs ` +
          `the text in these windows, so stepping one token at a time drops and re-routes what a batch would. Generated ` +
          'tokens are single steps (capacity ≥ 1: never dropped).',
      );
    }
    return out;
  }
}
