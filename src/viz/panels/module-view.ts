// Module-level view of one decoder layer: the blocks a token passes through (norms, attention, router, experts,
// shared expert, combine), each with its shapes and parameter count, the experts block showing the layer's current
// load. Clicking the experts block asks the 3D view to zoom into that layer's row. Built from DOM nodes (textContent).
import { countParameters, type MoeConfig } from '../../model/config';
import { expertColorCss } from '../colormaps';
import { formatCount } from './model-info';

export interface LayerModules {
  attention: number;
  router: number;
  experts: number;
  shared: number;
  dense: number;
  norms: number;
}

/** Parameters of each module of one layer (attention from countParameters, the same in every layer). */
export function layerModules(c: MoeConfig, layer: number): LayerModules {
  const H = c.hiddenSize;
  const moe = c.moeLayers[layer];
  const shared = moe && c.sharedExpert ? 3 * H * c.sharedExpert.intermediateSize + (c.sharedExpert.gated ? H : 0) : 0;
  return {
    attention: countParameters(c).attention / c.numLayers,
    router: moe ? c.numExperts * H + (c.router.hasBias ? c.numExperts : 0) + (c.router.hasCorrectionBias ? c.numExperts : 0) : 0,
    experts: moe ? c.numExperts * 3 * H * c.moeIntermediateSize : 0,
    shared,
    dense: moe ? 0 : 3 * H * c.intermediateSize,
    norms: 2 * H,
  };
}

function block(title: string, detail: string, params: number | null, cls = ''): HTMLElement {
  const b = document.createElement('div');
  b.className = `module ${cls}`;
  const t = document.createElement('div');
  t.className = 'module-title';
  t.textContent = title;
  const d = document.createElement('div');
  d.className = 'module-detail';
  d.textContent = params === null || Number.isNaN(params) ? detail : `${detail} · ${formatCount(params)} params`;
  b.append(t, d);
  return b;
}

export class ModuleView {
  constructor(
    private readonly root: HTMLElement,
    /** Called when the experts block is clicked (zoom the 3D view into the layer). */
    private readonly onZoom: (layer: number) => void,
  ) {}

  /** `load` is the layer's per-expert assignment counts (null without routing data). */
  draw(c: MoeConfig, layer: number, load: ArrayLike<number> | null): void {
    const m = layerModules(c, layer);
    const moe = c.moeLayers[layer];
    const H = c.hiddenSize;
    const head = document.createElement('div');
    head.className = 'note';
    head.textContent = `Layer ${layer} of ${c.numLayers} (${moe ? 'MoE' : 'dense FFN'}), hidden size ${H}.`;
    const blocks: HTMLElement[] = [
      block('RMSNorm', `${H}`, m.norms / 2),
      block(
        'attention',
        c.mla
          ? `multi-head latent attention, ${c.numHeads} heads (not run by the engine)`
          : `${c.numHeads} query heads, ${c.numKvHeads} KV heads × ${c.headDim}${c.qkNorm !== 'none' ? `, q/k norm (${c.qkNorm})` : ''}${c.slidingWindow ? `, window ${c.slidingWindow}` : ''}`,
        m.attention,
      ),
      block('RMSNorm', `${H}`, m.norms / 2),
    ];
    if (moe) {
      const r = c.router;
      const scoring = r.scoring === 'softmax' ? 'softmax' : 'sigmoid' + (r.hasCorrectionBias ? ' + bias for selection' : '');
      const groups = r.nGroup > 1 ? `, best ${r.topkGroup} of ${r.nGroup} groups` : '';
      blocks.push(block('router', `${H} → ${c.numExperts} logits, ${scoring}, top-${r.topK}${groups}${r.normTopK ? ', renormalised' : ''}${r.routedScalingFactor !== 1 ? `, × ${r.routedScalingFactor}` : ''}`, m.router));
      const experts = block('experts', `${c.numExperts} × SwiGLU ${H} → ${c.moeIntermediateSize} → ${H} (click: zoom the 3D view)`, m.experts, 'clickable');
      experts.addEventListener('click', () => this.onZoom(layer));
      experts.append(this.loadStrip(c.numExperts, load));
      blocks.push(experts);
      if (c.sharedExpert) {
        blocks.push(block('shared expert', `SwiGLU ${H} → ${c.sharedExpert.intermediateSize} → ${H}${c.sharedExpert.gated ? ', sigmoid-gated' : ''}, every token`, m.shared));
      }
      blocks.push(block('combine', `Σ gate weight × expert output${c.sharedExpert ? ' + shared' : ''}, residual add`, null));
    } else {
      blocks.push(block('dense FFN', `SwiGLU ${H} → ${c.intermediateSize} → ${H}, every token`, m.dense));
    }
    const flow = document.createElement('div');
    flow.className = 'modules';
    flow.append(...blocks);
    this.root.replaceChildren(head, flow);
  }

  /** A row of small bars, one per expert, of its share of the layer's assignments. */
  private loadStrip(E: number, load: ArrayLike<number> | null): HTMLElement {
    const strip = document.createElement('div');
    // Past ~100 experts, 1-pixel gaps and minimum widths would make the strip wider than the panel.
    strip.className = E > 96 ? 'load-strip dense' : 'load-strip';
    let total = 0;
    let peak = 0;
    for (let e = 0; e < E && load; e++) {
      total += load[e];
      peak = Math.max(peak, load[e]);
    }
    for (let e = 0; e < Math.min(E, 256); e++) {
      const bar = document.createElement('i');
      const v = load && peak > 0 ? load[e] / peak : 0;
      bar.style.height = `${Math.max(1, Math.round(v * 22))}px`;
      bar.style.background = expertColorCss(e, E);
      bar.title = load ? `expert ${e}: ${load[e]} (${total ? ((100 * load[e]) / total).toFixed(1) : 0}%)` : `expert ${e}`;
      strip.append(bar);
    }
    return strip;
  }
}
