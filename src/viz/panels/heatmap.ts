// Tokens × experts heatmap of one layer (canvas 2D): a row per processed token, a column per expert, the cell
// coloured by the gate weight the expert got for that token (0 = not chosen). Token labels are drawn as canvas text.
import { colormapCss, expertColorCss, type ColormapName } from '../colormaps';

export interface HeatmapData {
  /** [tokens, experts] values in [0, 1]. */
  matrix: Float32Array;
  numExperts: number;
  /** Display text per row. */
  labels: readonly string[];
  /** Row of the selected token, or −1. */
  selected: number;
  colormap: ColormapName;
  title: string;
}

const LABEL_WIDTH = 84;
const HEADER = 28;
const MAX_ROWS = 40;

export class HeatmapPanel {
  readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private rowOffset = 0;
  private rowHeight = 10;
  private rows = 0;
  private data: HeatmapData | null = null;
  private cellW = 0;
  private readonly legend: HTMLElement;

  constructor(
    container: HTMLElement,
    /** Called with a token position when a row is clicked. */
    private readonly onPickToken: (position: number) => void,
  ) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'panel-canvas';
    this.canvas.height = 220;
    this.legend = document.createElement('div');
    this.legend.className = 'heatmap-legend';
    container.append(this.canvas, this.legend);
    this.ctx = this.canvas.getContext('2d')!;
    this.canvas.addEventListener('click', (ev) => {
      const cell = this.cellAt(ev);
      if (cell) this.onPickToken(cell.position);
    });
    // Hover readout: the cell under the pointer, as the canvas's tooltip.
    this.canvas.addEventListener('mousemove', (ev) => {
      const cell = this.cellAt(ev);
      const d = this.data;
      this.canvas.title =
        cell && d
          ? `#${cell.position} "${visible(d.labels[cell.position])}"` +
            (cell.expert !== null ? ` · expert ${cell.expert}: gate weight ${d.matrix[cell.position * d.numExperts + cell.expert].toFixed(3)}` : '')
          : '';
    });
  }

  /** The token row and expert column under a mouse event, or null. */
  private cellAt(ev: MouseEvent): { position: number; expert: number | null } | null {
    if (!this.data) return null;
    const r = this.canvas.getBoundingClientRect();
    const x = ((ev.clientX - r.left) / r.width) * this.canvas.width;
    const y = ((ev.clientY - r.top) / r.height) * this.canvas.height;
    const row = Math.floor((y - HEADER) / this.rowHeight);
    if (row < 0 || row >= this.rows) return null;
    const e = Math.floor((x - LABEL_WIDTH) / this.cellW);
    return { position: this.rowOffset + row, expert: e >= 0 && e < this.data.numExperts ? e : null };
  }

  draw(d: HeatmapData): void {
    this.data = d;
    const { ctx, canvas } = this;
    const width = (canvas.width = Math.max(200, canvas.clientWidth || 320));
    const T = d.labels.length;
    // Show the last MAX_ROWS tokens, keeping the selected one in view.
    let first = Math.max(0, T - MAX_ROWS);
    if (d.selected >= 0 && d.selected < first) first = d.selected;
    this.rowOffset = first;
    this.rows = Math.min(MAX_ROWS, T - first);
    this.rowHeight = Math.max(4, Math.min(14, (canvas.height - HEADER) / Math.max(1, this.rows)));
    ctx.fillStyle = '#14171e';
    ctx.fillRect(0, 0, width, canvas.height);
    ctx.font = '10px ui-monospace, monospace';
    ctx.fillStyle = '#9aa3b2';
    ctx.textBaseline = 'middle';
    ctx.fillText(d.title, 4, 7);
    const E = d.numExperts;
    const cellW = (this.cellW = (width - LABEL_WIDTH - 4) / E);
    ctx.fillText('token ↓  expert →', 4, 21);
    // Expert ids in their identity colour (as on the grid's axis), thinned to every k-th where columns are narrow.
    const every = Math.ceil(12 / cellW);
    ctx.textAlign = 'center';
    for (let e = 0; e < E; e += every) {
      ctx.fillStyle = expertColorCss(e, E);
      ctx.fillText(String(e), LABEL_WIDTH + (e + 0.5) * cellW, 21);
    }
    ctx.textAlign = 'left';
    this.drawLegend(d.colormap);
    if (T === 0) {
      ctx.fillText('no tokens processed yet', LABEL_WIDTH, HEADER + 12);
      return;
    }
    const labelEvery = Math.ceil(9 / this.rowHeight);
    for (let r = 0; r < this.rows; r++) {
      const p = first + r;
      const y = HEADER + r * this.rowHeight;
      if (p === d.selected) {
        ctx.fillStyle = '#2d3442';
        ctx.fillRect(0, y, width, this.rowHeight);
      }
      ctx.fillStyle = p === d.selected ? '#ffffff' : '#c8cfdb';
      // Labels thin out to every k-th row (and the selected one) where rows are too short for all of them.
      if (r % labelEvery === 0 || p === d.selected) ctx.fillText(visible(d.labels[p]).slice(0, 12), 2, y + this.rowHeight / 2);
      for (let e = 0; e < E; e++) {
        const v = d.matrix[p * E + e];
        ctx.fillStyle = v > 0 ? colormapCss(d.colormap, 0.15 + 0.85 * v) : '#1c2029';
        ctx.fillRect(LABEL_WIDTH + e * cellW, y + 0.5, Math.max(1, cellW - 1), this.rowHeight - 1);
      }
    }
  }

  /** Colour bar of the gate weight under the canvas. */
  private drawLegend(colormap: ColormapName): void {
    const bar = document.createElement('div');
    bar.className = 'colorbar';
    const stops = Array.from({ length: 9 }, (_, i) => `${colormapCss(colormap, 0.15 + (0.85 * i) / 8)} ${(i / 8) * 100}%`);
    bar.style.background = `linear-gradient(90deg, ${stops.join(', ')})`;
    const ticks = document.createElement('div');
    ticks.className = 'colorbar-ticks';
    for (const [t, label] of [[0, 'gate weight 0'], [0.5, '0.5'], [1, '1']] as const) {
      const tick = Object.assign(document.createElement('span'), { textContent: label });
      tick.style.left = `${t * 100}%`;
      ticks.append(tick);
    }
    const note = Object.assign(document.createElement('div'), { className: 'note', textContent: 'dark cell: expert not chosen for the token; click a row to select its token' });
    this.legend.replaceChildren(bar, ticks, note);
  }
}

/** Whitespace and control characters made visible in a one-line label. */
export function visible(text: string): string {
  return text.replace(/\n/g, '⏎').replace(/\t/g, '⇥').replace(/ /g, '·').replace(/[\u0000-\u001f]/g, '�');
}
