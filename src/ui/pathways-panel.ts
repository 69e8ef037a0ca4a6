// Wires the pathways panel (src/viz/panels/pathways.ts) to the dashboard: on every routing snapshot, and when the
// focus layer changes, the co-activation and transitions of the focus layer are computed from the snapshot's ring
// (src/analysis/pathways.ts) and drawn. The analysis runs in idle time, never in a step's path, and reads only the
// focus layer and the next one: its cost is tokens × k² plus one experts² image, whatever the number of layers.
import { pathways } from '../analysis/pathways';
import type { RoutingSnapshot } from '../engine/session-api';
import { K_MAX } from '../model/limits';
import { PathwaysPanel } from '../viz/panels/pathways';
import { ringTokens } from '../viz/panels/stats';
import type { Dashboard } from './context';
import { el, onIdle } from './dom';

/** The longest a snapshot's pathways wait for idle time (ms). */
const IDLE_TIMEOUT_MS = 500;

export class PathwaysView {
  readonly panel = new PathwaysPanel(el('pathways'));
  private readonly idle = onIdle(() => this.draw(), IDLE_TIMEOUT_MS);
  /** u32 [tokens, 2, K_MAX]: the focus layer's and the next layer's rows of the ring, reused across draws. */
  private pair = new Uint32Array(0);

  constructor(private readonly d: Dashboard) {
    d.snapshots.subscribe(() => this.idle.schedule());
    d.state.subscribe((kind) => {
      if (kind === 'model' || kind === 'focus' || kind === 'view') this.idle.schedule();
    });
  }

  /** Resolves once no draw is waiting for idle time. */
  settled(): Promise<void> {
    return this.idle.settled();
  }

  /** The ring rows of `layers` (consecutive, from `first`) for the first `tokens` tokens, as a record of its own. */
  private rows(s: RoutingSnapshot, tokens: number, first: number, layers: number): Uint32Array {
    const n = tokens * layers * K_MAX;
    if (this.pair.length < n) this.pair = new Uint32Array(Math.max(n, 2 * this.pair.length));
    for (let t = 0; t < tokens; t++) {
      const from = (t * s.numLayers + first) * K_MAX;
      this.pair.set(s.chosen.subarray(from, from + layers * K_MAX), t * layers * K_MAX);
    }
    return this.pair.subarray(0, n);
  }

  private draw(): void {
    const model = this.d.model;
    const s = this.d.snapshots.current;
    if (!model || !s) return;
    const c = model.config;
    const focus = this.d.state.params.focusLayer;
    if (!c.moeLayers[focus]) return;
    // Transitions are counted between consecutive layers: the next layer must be MoE too.
    const next = focus + 1 < c.numLayers && c.moeLayers[focus + 1] ? focus + 1 : null;
    const tokens = Math.min(s.position, ringTokens(s));
    const layers = next !== null ? 2 : 1;
    const p = pathways({ tokens, numLayers: layers, numExperts: s.numExperts, chosen: this.rows(s, tokens, focus, layers) });
    this.panel.draw({
      layer: focus,
      next,
      numExperts: c.numExperts,
      coactivation: p.coactivation[0],
      transitions: next !== null ? p.transitions[0] : null,
      accuracy: next !== null ? p.predictability[0].accuracy : null,
      baseline: next !== null ? p.predictability[0].baseline : null,
      tokens: p.tokens,
      colormap: this.d.state.params.colormap,
    });
  }
}
