// Axis labels of the 3D grid as an HTML overlay: layer names along one edge, expert ids (or a group's expert range)
// along another, on the edges nearest the camera, re-projected only when the camera moves or the shown layers change.
// Neighbours closer than a few pixels on screen are skipped, so labels thin out instead of overlapping.
import { expertColorCss } from '../viz/colormaps';
import type { Dashboard } from './context';
import { el, make } from './dom';

/** A label's box on screen, CSS pixels: 10 px monospace text (about 6.1 px a character) and a little air. */
const CHAR_WIDTH = 6.1;
const LABEL_HEIGHT = 13;
const AIR = 3;

export class AxisLabels {
  private readonly root = el('labels');
  private layer: HTMLElement[] = [];
  private expert: HTMLElement[] = [];
  private readonly titles = { expert: make('span', 'label axis-title', 'expert id'), layer: make('span', 'label axis-title', 'layer') };

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
    // Expert ids in their identity colour, the one the token strip and the module view use; a group's range in grey.
    const grouped = layout.groupSize > 1 && layout.drill === null;
    this.expert = Array.from({ length: layout.columns }, (_, c) => {
      const [a, b] = [layout.colFirst[c], layout.colFirst[c + 1]];
      const span = make('span', 'label expert-label', grouped ? `${a}–${b - 1}` : String(a));
      if (!grouped) span.style.color = expertColorCss(a, layout.numExperts);
      return span;
    });
    this.titles.expert.textContent = grouped
      ? `expert group (${layout.groupSize} experts a bar)`
      : layout.drill !== null
        ? `expert id (group ${layout.colFirst[0]}–${layout.colFirst[layout.columns] - 1}; Esc: all groups)`
        : 'expert id';
    this.root.replaceChildren(...this.layer, ...this.expert, this.titles.expert, this.titles.layer);
    this.place();
  }

  /** Project every label (call after the camera moved). */
  place(): void {
    const scene = this.d.scene;
    const layout = scene.layout;
    if (!layout) return;
    const vis = this.d.state.visibility();
    const near = scene.cameraSide();
    // Anchors on the grid's edges nearest the camera; labels then sit a fixed number of pixels outside them.
    const layerX = near.plusX ? layout.bounds.maxX : layout.bounds.minX;
    const expertZ = near.plusZ ? layout.bounds.maxZ : layout.bounds.minZ;
    const outX = near.plusX ? 1 : -1;
    const outY = near.plusZ ? 1 : -1;
    // A label is drawn when its box does not overlap the last drawn one of its axis (labels go in order along it);
    // the two axes' labels stand outside different edges, so they cannot meet.
    const box = (span: HTMLElement, p: { x: number; y: number }) => ({ x: p.x, y: p.y, w: (span.textContent ?? '').length * CHAR_WIDTH + AIR, h: LABEL_HEIGHT });
    const apart = (a: ReturnType<typeof box>, b: ReturnType<typeof box>) => Math.abs(a.x - b.x) >= (a.w + b.w) / 2 || Math.abs(a.y - b.y) >= (a.h + b.h) / 2;
    const placeAll = (
      spans: HTMLElement[],
      point: (i: number) => [number, number, number],
      /** Pixels from the anchor to the label's centre, given the label's box. */
      offset: (b: ReturnType<typeof box>) => { dx: number; dy: number },
      shown: (i: number) => boolean,
    ): void => {
      let last: ReturnType<typeof box> | null = null;
      spans.forEach((span, i) => {
        const p = scene.project(...point(i));
        const anchor = p && box(span, p);
        const b = anchor && { ...anchor, x: anchor.x + offset(anchor).dx, y: anchor.y + offset(anchor).dy };
        span.hidden = !(b && shown(i) && (!last || apart(b, last)));
        if (b && !span.hidden) {
          span.style.transform = `translate(${b.x}px, ${b.y}px) translate(-50%, -50%)`;
          last = b;
        }
      });
    };
    placeAll(this.expert, (c) => [layout.x0 + c * layout.pitch, 0, expertZ], (b) => ({ dx: 0, dy: outY * (b.h / 2 + 3) }), () => true);
    placeAll(this.layer, (l) => [layerX, 0, layout.rowZ[l]], (b) => ({ dx: outX * (b.w / 2 + 4), dy: 0 }), (l) => vis[l]);
    // Axis titles a line beyond their labels: under the experts' row of ids, over the last layer's label.
    const { minX, maxX, minZ } = layout.bounds;
    const titleAt = (span: HTMLElement, p: { x: number; y: number } | null, dy: number) => {
      span.hidden = p === null;
      if (p) span.style.transform = `translate(${p.x}px, ${p.y + dy}px) translate(-50%, -50%)`;
    };
    titleAt(this.titles.expert, scene.project((minX + maxX) / 2, 0, expertZ), outY * (LABEL_HEIGHT * 1.5 + 6));
    titleAt(this.titles.layer, scene.project(layerX, 0, minZ), -(LABEL_HEIGHT + 4));
  }
}
