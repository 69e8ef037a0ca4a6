// Axis labels of the 3D grid as an HTML overlay: layer names along one edge, expert ids along another, on the edges
// nearest the camera, re-projected only when the camera moves or the shown layers change. Neighbours closer than a
// few pixels on screen are skipped, so labels thin out instead of overlapping.
import type { Dashboard } from './context';
import { el, make } from './dom';

/** Least screen distance (CSS pixels) between two drawn labels of one axis. */
const MIN_LAYER_GAP = 12;
const MIN_EXPERT_GAP = 16;

export class AxisLabels {
  private readonly root = el('labels');
  private layer: HTMLElement[] = [];
  private expert: HTMLElement[] = [];

  constructor(private readonly d: Dashboard) {
    d.state.subscribe((kind) => {
      if (kind === 'model' || kind === 'layout') this.build();
      else if (kind === 'layers') this.place();
    });
  }

  private build(): void {
    const layout = this.d.scene.layout;
    if (!layout) return;
    this.layer = Array.from({ length: layout.numLayers }, (_, l) => make('span', 'label layer-label', `L${l}`));
    this.expert = Array.from({ length: layout.numExperts }, (_, e) => make('span', 'label expert-label', String(e)));
    this.root.replaceChildren(...this.layer, ...this.expert);
    this.place();
  }

  /** Project every label (call after the camera moved). */
  place(): void {
    const scene = this.d.scene;
    const layout = scene.layout;
    if (!layout) return;
    const vis = this.d.state.visibility();
    const near = scene.cameraSide();
    const layerX = near.plusX ? layout.bounds.maxX + 0.7 : layout.bounds.minX - 0.7;
    const expertZ = near.plusZ ? layout.bounds.maxZ + 0.6 : layout.bounds.minZ - 0.6;
    const placeAll = (spans: HTMLElement[], point: (i: number) => [number, number, number], shown: (i: number) => boolean, gap: number) => {
      let last: { x: number; y: number } | null = null;
      spans.forEach((span, i) => {
        const p = scene.project(...point(i));
        const show = p !== null && shown(i) && (!last || Math.hypot(p.x - last.x, p.y - last.y) >= gap);
        span.hidden = !show;
        if (show) {
          span.style.transform = `translate(${p!.x}px, ${p!.y}px) translate(-50%, -50%)`;
          last = p;
        }
      });
    };
    placeAll(this.layer, (l) => [layerX, 0, layout.rowZ[l]], (l) => vis[l], MIN_LAYER_GAP);
    placeAll(this.expert, (e) => [layout.x0 + e, 0, expertZ], () => true, MIN_EXPERT_GAP);
  }
}
