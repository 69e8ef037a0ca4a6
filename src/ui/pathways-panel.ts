// Wires the pathways panel (src/viz/panels/pathways.ts) to the dashboard: on every routing snapshot, and when the
// focus layer changes, the co-activation and transitions of the focus layer are computed from the snapshot's ring
// (src/analysis/pathways.ts) and drawn.
import { pathways } from '../analysis/pathways';
import { PathwaysPanel } from '../viz/panels/pathways';
import { ringTokens } from '../viz/panels/stats';
import type { Dashboard } from './context';
import { el } from './dom';

export class PathwaysView {
  readonly panel = new PathwaysPanel(el('pathways'));

  constructor(private readonly d: Dashboard) {
    d.snapshots.subscribe(() => this.draw());
    d.state.subscribe((kind) => {
      if (kind === 'model' || kind === 'focus' || kind === 'view') this.draw();
    });
  }

  private draw(): void {
    const model = this.d.model;
    const s = this.d.snapshots.current;
    if (!model || !s) return;
    const c = model.config;
    const focus = this.d.state.params.focusLayer;
    if (!c.moeLayers[focus]) return;
    const p = pathways({ tokens: Math.min(s.position, ringTokens(s)), numLayers: s.numLayers, numExperts: s.numExperts, chosen: s.chosen });
    // Transitions are counted between consecutive layers: the next layer must be MoE too.
    const next = focus + 1 < c.numLayers && c.moeLayers[focus + 1] ? focus + 1 : null;
    this.panel.draw({
      layer: focus,
      next,
      numExperts: c.numExperts,
      coactivation: p.coactivation[focus],
      transitions: next !== null ? p.transitions[focus] : null,
      accuracy: next !== null ? p.predictability[focus].accuracy : null,
      baseline: next !== null ? p.predictability[focus].baseline : null,
      tokens: p.tokens,
      colormap: this.d.state.params.colormap,
    });
  }
}
