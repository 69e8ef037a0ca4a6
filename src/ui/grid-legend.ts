// The 3D grid's legend, in a corner of the view: what a bar's height and colour mean in the current mode (with a
// colour bar in the current colour map and its ticks), the fixed colours of cells that carry no value, and for large
// models what a group bar is, with the way back from an opened group.
import { colormapCss } from '../viz/colormaps';
import type { ViewMode } from '../viz/instance-values';
import type { Dashboard } from './context';
import { el, make } from './dom';

interface ModeLegend {
  height: string;
  colour: string;
  /** Colour-bar ticks: position t in [0, 1] and label. */
  ticks: [number, string][];
}

// Load and probability modes colour t = r / (1 + r), r = value / layer mean: a fair share (r = 1) is the middle.
const RATIO_TICKS: [number, string][] = [[0, '0'], [0.5, 'fair share'], [0.75, '3×'], [0.857, '6×']];

const LEGENDS: Record<ViewMode, ModeLegend> = {
  load: { height: 'height: tokens the expert took / the layer’s fair share (capped at 6×)', colour: 'colour: the same ratio', ticks: RATIO_TICKS },
  current: { height: 'height: the current (last) token’s experts in each layer (k per layer)', colour: 'colour: the same share', ticks: [[0, '0'], [0.5, '½ max'], [1, 'max']] },
  probability: { height: 'height: router probability summed over tokens / fair share', colour: 'colour: the same ratio', ticks: RATIO_TICKS },
  dropped: { height: 'height: assignments dropped or re-routed (over capacity) / layer max', colour: 'colour: share re-routed', ticks: [[0, 'all dropped'], [1, 'all re-routed']] },
  atlas: {
    height: 'height: |Δ log-likelihood| of the text when the expert is ablated (causal atlas), / the largest',
    colour: 'colour: the signed Δ (right: the ablation costs likelihood, the expert helps)',
    ticks: [[0, '+max'], [0.5, '0'], [1, '−max nats']],
  },
};

/** Cells without a colour-map value, as the grid's material colours them. */
const FIXED: [string, string][] = [
  ['#8c2431', 'ablated expert'],
  ['#b59a6a', 'shared expert (every token)'],
  ['#2b303b', 'dense layer (no router)'],
  ['#3a4150', 'nothing routed yet (atlas: not run)'],
];

export class GridLegend {
  private readonly root = el('grid-legend');

  constructor(private readonly d: Dashboard) {
    d.state.subscribe((kind) => {
      if (kind === 'view' || kind === 'model' || kind === 'layout') this.draw();
    });
  }

  private draw(): void {
    const { mode, colormap } = this.d.state.params;
    const legend = LEGENDS[mode];
    const bar = make('div', 'colorbar');
    const stops = Array.from({ length: 9 }, (_, i) => `${colormapCss(colormap, i / 8)} ${(i / 8) * 100}%`);
    bar.style.background = `linear-gradient(90deg, ${stops.join(', ')})`;
    const ticks = make('div', 'colorbar-ticks');
    for (const [t, label] of legend.ticks) {
      const tick = make('span', '', label);
      tick.style.left = `${t * 100}%`;
      ticks.append(tick);
    }
    const fixed = make('div', 'legend');
    for (const [c, label] of FIXED) {
      const item = make('span', 'legend-item');
      const swatch = make('i');
      swatch.style.background = c;
      item.append(swatch, document.createTextNode(label));
      fixed.append(item);
    }
    this.root.replaceChildren(make('div', '', legend.height), make('div', '', legend.colour), bar, ticks, fixed, ...this.groups());
  }

  /** With experts in groups: what a bar stands for, and the way into a group and back. */
  private groups(): HTMLElement[] {
    const g = this.d.scene.layout;
    if (!g || g.groupSize === 1) return [];
    if (g.drill === null) return [make('div', 'legend-groups', `Grouped: a bar sums ${g.groupSize} experts (fair share ${g.groupSize}× an expert's). Click to open.`)];
    const back = make('button', 'legend-back', '◂ all groups (Esc)');
    back.addEventListener('click', () => this.d.state.setDrill(null));
    const line = make('div', 'legend-groups', `Experts ${g.colFirst[0]}–${g.colFirst[g.columns] - 1}, one bar each `);
    line.append(back);
    return [line];
  }
}
