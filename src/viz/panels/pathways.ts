// Pathways of the focus layer (canvas 2D), beside the 3D view: left, how often two experts of the layer were chosen
// for the same token (co-activation); right, how often an expert of the layer was followed by each expert of the next
// MoE layer (transitions); a caption with how well the layer's top-1 choice predicts the next layer's.
import { colormap, colormapCss, type ColormapName } from '../colormaps';

export interface PathwaysData {
  layer: number;
  /** The next MoE layer, or null when the focus layer is the last. */
  next: number | null;
  numExperts: number;
  /** [experts, experts] token counts. */
  coactivation: ArrayLike<number>;
  /** [experts, experts] (expert at layer, expert at next) pair counts, or null. */
  transitions: ArrayLike<number> | null;
  /** Top-1 predictability of the next layer from this one (share of tokens), and its baseline. */
  accuracy: number | null;
  baseline: number | null;
  tokens: number;
  colormap: ColormapName;
}

const TOP = 30;
const LEFT = 16;
/** Below this many pixels per cell the grid is drawn as one image (experts² pixels) instead of a rectangle per cell. */
const MIN_CELL_RECT_PX = 3;
const EMPTY_RGB = [0x1c, 0x20, 0x29] as const;

export class PathwaysPanel {
  readonly canvas: HTMLCanvasElement;
  private readonly caption: HTMLElement;
  private readonly ctx: CanvasRenderingContext2D;
  /** One pixel per cell, scaled onto the panel when cells are too small for rectangles. */
  private readonly image = document.createElement('canvas');
  /** What was drawn last (tests compare it with the engine's routing record). */
  data: PathwaysData | null = null;

  constructor(container: HTMLElement) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'panel-canvas';
    this.canvas.height = 190;
    this.caption = document.createElement('div');
    this.caption.className = 'note';
    container.append(this.canvas, this.caption);
    this.ctx = this.canvas.getContext('2d')!;
  }

  draw(d: PathwaysData): void {
    this.data = d;
    const { ctx, canvas } = this;
    const width = (canvas.width = Math.max(240, canvas.clientWidth || 320));
    ctx.fillStyle = '#14171e';
    ctx.fillRect(0, 0, width, canvas.height);
    ctx.font = '10px ui-monospace, monospace';
    ctx.textBaseline = 'middle';
    const side = Math.min((width - 3 * LEFT) / 2, canvas.height - TOP - 16);
    this.grid(d.coactivation, d.numExperts, LEFT, side, `layer ${d.layer}: chosen together`, d.colormap);
    if (d.transitions && d.next !== null) this.grid(d.transitions, d.numExperts, 2 * LEFT + side, side, `${d.layer} → ${d.next}: rows → columns`, d.colormap);
    this.caption.textContent =
      d.tokens === 0
        ? 'no tokens processed yet'
        : d.accuracy === null || d.next === null
          ? `${d.tokens} tokens; the last MoE layer has no next layer`
          : `${d.tokens} tokens; layer ${d.layer}'s top-1 expert predicts layer ${d.next}'s for ${(100 * d.accuracy).toFixed(0)}% of tokens ` +
            `(its most common expert alone: ${(100 * (d.baseline ?? 0)).toFixed(0)}%)`;
  }

  private grid(values: ArrayLike<number>, E: number, x0: number, side: number, title: string, colormapName: ColormapName): void {
    const { ctx } = this;
    let max = 0;
    for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]);
    ctx.fillStyle = '#9aa3b2';
    ctx.textAlign = 'left';
    ctx.fillText(title, x0, 8);
    const cell = side / E;
    if (cell >= 9) {
      ctx.textAlign = 'center';
      for (let e = 0; e < E; e++) {
        ctx.fillText(String(e), x0 + (e + 0.5) * cell, TOP - 8);
        ctx.fillText(String(e), x0 - 7, TOP + (e + 0.5) * cell);
      }
    }
    if (cell < MIN_CELL_RECT_PX) {
      this.asImage(values, E, max, colormapName);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.image, x0, TOP, side, side);
      return;
    }
    for (let i = 0; i < E; i++) {
      for (let j = 0; j < E; j++) {
        const v = values[i * E + j];
        ctx.fillStyle = v > 0 ? colormapCss(colormapName, 0.15 + (0.85 * v) / max) : '#1c2029';
        ctx.fillRect(x0 + j * cell, TOP + i * cell, cell - 1, cell - 1);
      }
    }
  }

  /** Paints `values` [E, E] into the one-pixel-per-cell canvas, in the same colours as the rectangles. */
  private asImage(values: ArrayLike<number>, E: number, max: number, colormapName: ColormapName): void {
    this.image.width = E;
    this.image.height = E;
    const ictx = this.image.getContext('2d')!;
    const img = ictx.createImageData(E, E);
    for (let x = 0; x < E * E; x++) {
      const v = values[x];
      const rgb = v > 0 ? colormap(colormapName, 0.15 + (0.85 * v) / max) : EMPTY_RGB;
      img.data[4 * x] = rgb[0];
      img.data[4 * x + 1] = rgb[1];
      img.data[4 * x + 2] = rgb[2];
      img.data[4 * x + 3] = 255;
    }
    ictx.putImageData(img, 0, 0);
  }
}
