// The causal expert atlas in the dashboard: on request, the processed tokens are run once as the model is and once per
// routed expert with that expert ablated (src/engine/analysis/ablation-sweep.ts, in turn with the steps), scored by
// src/analysis/atlas.ts, and handed to the 3D view's 'atlas' mode (bar height and colour = Δ log-likelihood of the
// text). Every routed expert, or the focus layer's alone (a quicker sweep); experts not swept are drawn as "not run".
// The selected expert's most hurt tokens are listed here.
import { AtlasBuilder, type Atlas, type AtlasEntry } from '../analysis/atlas';
import { ablationSweep, allCells } from '../engine/analysis/ablation-sweep';
import { Session } from '../engine/model/session';
import { CELL_KIND } from '../viz/layout';
import type { Dashboard } from './context';
import { el, make } from './dom';
import { showError } from './messages';

export class AtlasView {
  private readonly button = el<HTMLButtonElement>('atlas-run');
  private readonly scope = el<HTMLSelectElement>('atlas-scope');
  private readonly note = el('atlas-note');
  private readonly hurt = el('atlas-hurt');
  /** The last atlas and the tokens it was run on, or null. */
  atlas: { result: Atlas; delta: Float32Array; texts: string[] } | null = null;

  constructor(private readonly d: Dashboard) {
    this.button.addEventListener('click', () => void this.run());
    d.state.subscribe((kind) => {
      if (kind === 'model') this.clear('Runs the processed tokens once per routed expert, with that expert ablated.');
      if (kind === 'selection' || kind === 'model') this.showSelected();
    });
  }

  private clear(message: string): void {
    this.atlas = null;
    this.d.scene.setAtlas(null);
    this.note.textContent = message;
  }

  async run(): Promise<void> {
    const session = this.d.model?.session;
    const stepper = this.d.stepper;
    if (!(session instanceof Session) || !stepper) return showError(new Error('The atlas needs a running model.'));
    const tokens = stepper.processed.slice();
    if (tokens.length < 2) return showError(new Error('Step at least two tokens first: the atlas scores the text’s next-token predictions.'));
    const c = session.config;
    const ids = tokens.map((t) => t.id);
    const builder = new AtlasBuilder(ids, c.vocabSize);
    const focus = this.d.state.params.focusLayer;
    if (this.scope.value === 'focus' && !c.moeLayers[focus]) return showError(new Error(`Layer ${focus} is dense: it has no experts to ablate.`));
    const cells = this.scope.value === 'focus' ? allCells(session).filter((x) => x.layer === focus) : allCells(session);
    const runs = 1 + cells.length;
    let done = 0;
    const started = performance.now();
    this.button.disabled = true;
    try {
      await stepper.run(() =>
        ablationSweep(session, ids, {
          cells,
          onRun: (cell, logits) => {
            if (cell) builder.add(cell.layer, cell.expert, logits);
            else builder.setBase(logits);
            this.note.textContent = `run ${++done} of ${runs}…`;
          },
        }),
      );
      const result = builder.build();
      const delta = new Float32Array(c.numLayers * c.numExperts).fill(NaN); // NaN: not swept
      for (const e of result.entries) delta[e.layer * c.numExperts + e.expert] = e.deltaLogLikelihood;
      this.atlas = { result, delta, texts: tokens.map((t) => t.text) };
      this.d.scene.setAtlas(delta);
      const top = result.entries[0];
      this.note.textContent =
        `${runs} runs of ${ids.length} tokens in ${((performance.now() - started) / 1000).toFixed(1)} s; log-likelihood ${result.logLikelihood.toFixed(2)} nats. ` +
        `Most needed: layer ${top.layer} expert ${top.expert} (Δ ${top.deltaLogLikelihood.toFixed(2)} nats). Show it in the 3D view: show → causal atlas.`;
      this.showSelected();
    } catch (e) {
      showError(e);
    } finally {
      this.button.disabled = false;
    }
  }

  /** The atlas entry of the selected grid cell, or null. */
  selectedEntry(): AtlasEntry | null {
    const layout = this.d.scene.layout;
    const i = this.d.state.selectedCell;
    if (!this.atlas || !layout || i < 0 || layout.kind[i] !== CELL_KIND.routed) return null;
    return this.atlas.result.entries.find((e) => e.layer === layout.layer[i] && e.expert === layout.expert[i]) ?? null;
  }

  private showSelected(): void {
    const e = this.selectedEntry();
    if (!this.atlas) return this.hurt.replaceChildren();
    if (!e) return this.hurt.replaceChildren(make('div', 'note', 'Click an expert in the grid for the tokens its ablation hurts most.'));
    const head = make('div', '', `Layer ${e.layer}, expert ${e.expert} ablated: Δ log-likelihood ${e.deltaLogLikelihood.toFixed(3)} nats, mean KL ${e.meanKl.toFixed(3)}; most hurt:`);
    const list = make('div', 'chips');
    for (const h of e.mostHurt) {
      const chip = make('button', 'chip', `${this.atlas.texts[h.position].replace(/\n/g, '⏎')} ${h.delta.toFixed(2)}`);
      chip.title = `#${h.position}: log p ${h.delta.toFixed(4)} nats with the expert ablated`;
      chip.addEventListener('click', () => this.d.state.selectToken(h.position));
      list.append(chip);
    }
    this.hurt.replaceChildren(head, list);
  }
}
