// Pointing at the 3D grid: hover shows a tooltip with the cell's figures (from the latest snapshot), a click (not a
// drag) selects the cell, or opens it when it is a group of experts (Escape goes back to all groups). The cell under
// the pointer is picked by the scene; the state holds hovered and selected.
import { CELL_KIND, isGroupBar } from '../viz/layout';
import { barHeights, expertStat } from '../viz/panels/stats';
import type { Dashboard } from './context';
import { el, make } from './dom';

/** Pointer travel (CSS pixels) between press and release beyond which it was a drag, not a click. */
const CLICK_SLOP = 4;

export class GridPointer {
  private readonly tooltip = el('tooltip');

  constructor(private readonly d: Dashboard) {
    const canvas = d.scene.canvas;
    const at = (ev: PointerEvent) => {
      const r = canvas.getBoundingClientRect();
      return { x: ev.clientX - r.left, y: ev.clientY - r.top };
    };
    let down: { x: number; y: number } | null = null;
    canvas.addEventListener('pointermove', (ev) => {
      const p = at(ev);
      this.tooltip.style.transform = `translate(${p.x + 14}px, ${p.y + 14}px)`;
      d.state.hover(d.scene.pick(p.x, p.y));
    });
    canvas.addEventListener('pointerleave', () => d.state.hover(-1));
    canvas.addEventListener('pointerdown', (ev) => (down = { x: ev.clientX, y: ev.clientY }));
    canvas.addEventListener('pointerup', (ev) => {
      if (!down || Math.hypot(ev.clientX - down.x, ev.clientY - down.y) > CLICK_SLOP) return;
      const p = at(ev);
      const i = d.scene.pick(p.x, p.y);
      const layout = d.scene.layout;
      if (layout && i >= 0 && isGroupBar(layout, i)) d.state.setDrill(Math.floor(layout.expert[i] / layout.groupSize));
      else d.state.selectCell(i);
    });
    window.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && d.state.drill !== null && !(ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement)) {
        d.state.setDrill(null);
      }
    });
    d.state.subscribe((kind) => {
      if (kind === 'hover' || kind === 'selection' || kind === 'model' || kind === 'layout') {
        d.scene.setHighlight(d.state.hoveredCell, d.state.selectedCell);
      }
      if (kind === 'model' || kind === 'layout' || kind === 'view' || kind === 'layers') this.updateBars();
      if (kind !== 'selection' && kind !== 'focus' && kind !== 'playback') this.updateTooltip();
    });
    d.snapshots.subscribe(() => {
      this.updateBars();
      this.updateTooltip();
    });
  }

  /** Give the scene the bars as drawn (heights from the latest snapshot, shown layers), to pick against. */
  private updateBars(): void {
    const layout = this.d.scene.layout;
    if (!layout) return;
    const s = this.d.snapshots.current;
    const { mode, heightScale } = this.d.state.params;
    const heights = new Float32Array(layout.count);
    for (let l = 0; l < layout.numLayers; l++) {
      const routed = s && layout.firstExpert[l] >= 0 ? barHeights(s, l, mode, heightScale, undefined, this.d.scene.atlas, layout.colFirst) : null;
      if (routed) heights.set(routed, layout.firstExpert[l]);
      // Shared-expert and dense cells stand at fixed heights (instance-values.wgsl).
      if (layout.sharedCell[l] >= 0) heights[layout.sharedCell[l]] = 0.5 * heightScale;
      if (layout.denseCell[l] >= 0) heights[layout.denseCell[l]] = 0.25 * heightScale;
    }
    this.d.scene.setPickBars(heights, this.d.state.visibility());
  }

  /** Tooltip of the hovered cell: layer, expert, count, share, mean gate weight (from the latest snapshot). */
  private updateTooltip(): void {
    const layout = this.d.scene.layout;
    const i = this.d.state.hoveredCell;
    const model = this.d.model;
    if (!layout || i < 0 || !model) {
      this.tooltip.hidden = true;
      return;
    }
    const l = layout.layer[i];
    const lines: string[] = [];
    if (layout.kind[i] === CELL_KIND.dense) lines.push(`layer ${l}: dense FFN (no router; every token)`);
    else if (layout.kind[i] === CELL_KIND.shared) lines.push(`layer ${l}: shared expert (every token)`);
    else if (isGroupBar(layout, i)) {
      const c = i - layout.firstExpert[l];
      const [a, b] = [layout.colFirst[c], layout.colFirst[c + 1]];
      const s = this.d.snapshots.current;
      let count = 0;
      let total = 0;
      for (let e = 0; e < layout.numExperts; e++) {
        const n = s ? s.counts[l * layout.numExperts + e] : 0;
        total += n;
        if (e >= a && e < b) count += n;
      }
      lines.push(`layer ${l} · experts ${a}–${b - 1} (a group of ${b - a})`);
      if (s) lines.push(`count ${count}`, `share ${total ? ((100 * count) / total).toFixed(1) : '0.0'}% (fair ${((100 * (b - a)) / layout.numExperts).toFixed(1)}%)`);
      else lines.push(model.session ? 'no tokens yet' : 'config only: no routing data');
      lines.push('click to open the group');
    } else {
      const e = layout.expert[i];
      lines.push(`layer ${l} · expert ${e}`);
      const s = this.d.snapshots.current;
      if (s) {
        const st = expertStat(s, l, e);
        lines.push(
          `count ${st.count}`,
          `share ${(st.share * 100).toFixed(1)}% (fair ${(100 / layout.numExperts).toFixed(1)}%)`,
          `mean gate weight ${model.replay?.weights ?? st.meanGate.toFixed(3)}`,
          `mean router prob ${model.replay?.probs ?? st.meanProb.toFixed(3)}`,
        );
        if (st.dropped || st.rerouted) lines.push(`dropped ${st.dropped} · re-routed in ${st.rerouted}`);
      } else lines.push(model.session ? 'no tokens yet' : 'config only: no routing data');
      if (this.d.state.ablated[l * layout.numExperts + e]) lines.push('ablated');
    }
    this.tooltip.replaceChildren(...lines.map((t) => make('div', '', t)));
    this.tooltip.hidden = false;
  }
}
