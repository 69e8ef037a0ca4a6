// The expert inspector: weight norms of the focus layer's experts and how similar they are, read from the model's
// checkpoint on request (never on a step path).
import { cosineMatrix, drawInspector, expertNorms, expertVectors } from '../viz/panels/inspector';
import { formatBytes } from '../viz/panels/model-info';
import type { Dashboard } from './context';
import { el } from './dom';
import { guard } from './messages';

export class InspectorPanel {
  constructor(private readonly d: Dashboard) {
    el('inspect').addEventListener('click', () => void guard(() => this.inspect()));
    d.state.subscribe((kind) => {
      if (kind === 'model') this.reset();
    });
  }

  private reset(): void {
    const weights = this.d.model?.weights;
    el<HTMLCanvasElement>('inspector').hidden = true;
    el('inspector-note').textContent = weights
      ? 'Weight norms of each expert of the focus layer and how similar the experts are to each other.'
      : 'Needs a running model (its weights).';
    el<HTMLButtonElement>('inspect').disabled = !weights;
  }

  /** Norms and similarity matrices of the focus layer's experts, read from the model's weights. */
  async inspect(): Promise<void> {
    const model = this.d.model;
    const { focusLayer: focus, colormap } = this.d.state.params;
    const reader = model?.weights;
    if (!model || !reader) throw new Error('The expert inspector needs a running model: this one is drawn from its config only.');
    if (!model.config.moeLayers[focus]) throw new Error(`Layer ${focus} is a dense layer: pick a MoE layer as focus layer.`);
    const note = el('inspector-note');
    note.textContent = `reading layer ${focus}'s expert weights (${formatBytes(await reader.bytesFor(focus))})…`;
    const w = await reader.read(focus);
    const weightSimilarity = cosineMatrix(expertVectors(w));
    const routerSimilarity = cosineMatrix(w.router);
    const canvas = el<HTMLCanvasElement>('inspector');
    canvas.hidden = false;
    drawInspector(canvas, { layer: focus, norms: expertNorms(w), weightSimilarity, routerSimilarity, colormap });
    // Numbering is arbitrary: experts with neighbouring ids are no more alike than any two experts.
    const E = model.config.numExperts;
    let near = 0, all = 0, nNear = 0, nAll = 0;
    for (let a = 0; a < E; a++) {
      for (let b = a + 1; b < E; b++) {
        all += weightSimilarity[a * E + b];
        nAll++;
        if (b === a + 1) {
          near += weightSimilarity[a * E + b];
          nNear++;
        }
      }
    }
    note.textContent =
      `Layer ${focus}: mean cosine between experts ${(all / Math.max(1, nAll)).toFixed(3)}, between experts with ` +
      `neighbouring ids ${(near / Math.max(1, nNear)).toFixed(3)}: ids carry no order (renumbering the experts and ` +
      'their router rows together leaves the model unchanged).';
  }
}
