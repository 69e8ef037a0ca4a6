// Attention flow (canvas 2D): for the current token, the attention weights of one layer over the context, as a strip
// of cells over the context tokens (oldest left, the token itself right): one row for the heads' mean or max, or one
// row per head. A sink column (gpt-oss's learned sink logit) sits left of the keys, apart: the share of the softmax it
// took, which no token received. A colour bar maps 0 … the largest weight drawn; hovering a cell reads it out.
import { colormapCss, type ColormapName } from '../colormaps';

export type HeadAggregate = 'mean' | 'max' | 'heads';

export interface AttentionData {
  layer: number;
  /** Position of the query token; keys are positions [first, position]. */
  position: number;
  /** First key drawn (older keys fall off the strip when it is full). */
  first: number;
  aggregate: HeadAggregate;
  /** Row labels: 'mean of 4 heads', 'max of 4 heads', or 'head 0', 'head 1', … */
  rows: string[];
  /** [rows, position − first + 1] the drawn weights. */
  values: Float32Array;
  /** [rows] the sink's share per row, or null when the family has no sinks. */
  sink: Float32Array | null;
  /** Display text of the keys' tokens, [position − first + 1]. */
  tokens: readonly string[];
  colormap: ColormapName;
}

const LEFT = 58; // row labels
const SINK_W = 16; // the sink column and its gap
const TOP = 16; // axis title
const BAR = 30; // colour bar and its labels at the bottom
const TOKEN_ROW = 14; // token labels under the strip

export class AttentionPanel {
  readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  /** The hover readout. */
  readonly readout: HTMLElement;
  /** What was drawn last (tests compare it with the engine's probe). */
  data: AttentionData | null = null;
  private geometry = { x0: 0, cell: 0, rowH: 0 };

  constructor(container: HTMLElement) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'panel-canvas';
    this.readout = document.createElement('div');
    this.readout.className = 'note';
    this.readout.textContent = 'hover a cell for its weight';
    container.append(this.canvas, this.readout);
    this.ctx = this.canvas.getContext('2d')!;
    this.canvas.addEventListener('mousemove', (ev) => this.hover(ev));
  }

  /** Keys that fit the strip at the current width (at least 3 px a cell). */
  capacity(): number {
    const width = Math.max(240, this.canvas.clientWidth || 320);
    return Math.max(1, Math.floor((width - LEFT - SINK_W - 4) / 3));
  }

  clear(message: string): void {
    this.data = null;
    const { ctx, canvas } = this;
    canvas.width = Math.max(240, canvas.clientWidth || 320);
    canvas.height = 40;
    ctx.fillStyle = '#14171e';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = '#9aa3b2';
    ctx.font = '11px ui-monospace, monospace';
    ctx.textBaseline = 'middle';
    ctx.fillText(message, 8, 20);
    this.readout.textContent = '';
  }

  draw(d: AttentionData): void {
    this.data = d;
    const { ctx, canvas } = this;
    const keys = d.position - d.first + 1;
    const width = (canvas.width = Math.max(240, canvas.clientWidth || 320));
    const rowH = d.rows.length > 1 ? Math.max(6, Math.min(14, Math.floor(120 / d.rows.length))) : 24;
    canvas.height = TOP + d.rows.length * rowH + TOKEN_ROW + BAR;
    const x0 = LEFT + SINK_W;
    const cell = (width - x0 - 4) / keys;
    this.geometry = { x0, cell, rowH };
    let max = 0;
    for (const v of d.values) max = Math.max(max, v);
    for (const v of d.sink ?? []) max = Math.max(max, v);
    const colour = (v: number) => colormapCss(d.colormap, max > 0 ? v / max : 0);

    ctx.fillStyle = '#14171e';
    ctx.fillRect(0, 0, width, canvas.height);
    ctx.font = '10px ui-monospace, monospace';
    ctx.textBaseline = 'middle';
    ctx.fillStyle = '#9aa3b2';
    ctx.textAlign = 'left';
    ctx.fillText(`layer ${d.layer} · query #${d.position} · keys #${d.first}…#${d.position} · ${d.aggregate === 'heads' ? 'per head' : `${d.aggregate} of heads`}`, 4, 7);
    d.rows.forEach((label, r) => {
      const y = TOP + r * rowH;
      ctx.fillStyle = '#9aa3b2';
      ctx.textAlign = 'right';
      if (rowH >= 9) ctx.fillText(label, LEFT - 4, y + rowH / 2);
      if (d.sink) {
        ctx.fillStyle = colour(d.sink[r]);
        ctx.fillRect(LEFT, y, SINK_W - 5, rowH - 1);
      }
      for (let k = 0; k < keys; k++) {
        ctx.fillStyle = colour(d.values[r * keys + k]);
        ctx.fillRect(x0 + k * cell, y, Math.max(1, cell - (cell > 4 ? 1 : 0)), rowH - 1);
      }
    });
    // Token labels under the strip where a cell is wide enough, else every tenth position.
    const yTok = TOP + d.rows.length * rowH + TOKEN_ROW / 2;
    ctx.fillStyle = '#9aa3b2';
    ctx.textAlign = 'center';
    if (d.sink) ctx.fillText('sink', LEFT + (SINK_W - 5) / 2, yTok);
    for (let k = 0; k < keys; k++) {
      const p = d.first + k;
      if (cell >= 22) ctx.fillText(visible(d.tokens[k]).slice(0, Math.floor(cell / 6)), x0 + (k + 0.5) * cell, yTok);
      else if (p % 10 === 0) ctx.fillText(`#${p}`, x0 + (k + 0.5) * cell, yTok);
    }
    this.colourBar(d.colormap, max, canvas.height - BAR + 6, width);
  }

  private colourBar(colormap: ColormapName, max: number, y: number, width: number): void {
    const { ctx } = this;
    const x0 = LEFT, w = Math.min(200, width - LEFT - 60);
    for (let i = 0; i < w; i++) {
      ctx.fillStyle = colormapCss(colormap, i / (w - 1));
      ctx.fillRect(x0 + i, y, 1, 8);
    }
    ctx.fillStyle = '#9aa3b2';
    ctx.textAlign = 'left';
    ctx.fillText('0', x0, y + 16);
    ctx.textAlign = 'right';
    ctx.fillText(max.toFixed(3), x0 + w, y + 16);
    ctx.textAlign = 'left';
    ctx.fillText('attention weight', x0 + w + 6, y + 4);
  }

  private hover(ev: MouseEvent): void {
    const d = this.data;
    if (!d) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = ((ev.clientX - rect.left) * this.canvas.width) / rect.width;
    const y = ((ev.clientY - rect.top) * this.canvas.height) / rect.height;
    const { x0, cell, rowH } = this.geometry;
    const r = Math.floor((y - TOP) / rowH);
    if (r < 0 || r >= d.rows.length) return;
    const keys = d.position - d.first + 1;
    if (d.sink && x >= LEFT && x < x0) {
      this.readout.textContent = `${d.rows[r]} · sink: ${d.sink[r].toFixed(4)} of the softmax (attended to no token)`;
      return;
    }
    const k = Math.floor((x - x0) / cell);
    if (k < 0 || k >= keys) return;
    this.readout.textContent = `${d.rows[r]} · key #${d.first + k} "${visible(d.tokens[k])}": weight ${d.values[r * keys + k].toFixed(4)}`;
  }
}

const visible = (s: string | undefined) => (s ?? '').replace(/\n/g, '⏎');
