// Per-layer expert-load bars (canvas 2D), each expert's bar stacked by the domain label of the tokens it took
// (prose genres, code, prompt, generated), like MoE-LLaVA's text/image split. One small chart per MoE layer.

export interface LoadBarsLayer {
  layer: number;
  /** [domains][experts] assignment counts. */
  counts: Uint32Array[];
}

export interface LoadBarsData {
  domains: string[];
  layers: LoadBarsLayer[];
  numExperts: number;
  /** Layer drawn with a highlight (the focus layer). */
  focus: number;
}

/** Fixed colours per domain name, so a domain keeps its colour across redraws. */
const PALETTE = ['#4cc9f0', '#f72585', '#ffd166', '#06d6a0', '#b388eb', '#ff9f1c', '#8ecae6', '#e76f51', '#90be6d', '#cdb4db'];

export function domainColor(domains: readonly string[], name: string): string {
  const i = domains.indexOf(name);
  if (i < 0) return '#888';
  return i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.508) % 360}, 55%, 62%)`;
}

/** What the bars are split by: the sample's domain, its genre / language, or the part of speech of each token. */
export const SPLIT_KEYS = ['domain', 'genre', 'pos'] as const;
export type SplitKey = (typeof SPLIT_KEYS)[number];
const SPLIT_LABELS: Record<SplitKey, string> = { domain: 'split by domain', genre: 'split by genre / language', pos: 'split by part of speech' };

export class LoadBarsPanel {
  readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private readonly legend: HTMLElement;
  split: SplitKey = 'domain';

  constructor(container: HTMLElement, onSplit: () => void) {
    const select = document.createElement('select');
    select.setAttribute('aria-label', 'split load bars by');
    select.id = 'loadbars-split';
    for (const key of SPLIT_KEYS) select.add(new Option(SPLIT_LABELS[key], key));
    select.addEventListener('change', () => {
      this.split = select.value as SplitKey;
      onSplit();
    });
    this.legend = document.createElement('div');
    this.legend.className = 'legend';
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'panel-canvas';
    container.append(select, this.legend, this.canvas);
    this.ctx = this.canvas.getContext('2d')!;
  }

  draw(d: LoadBarsData): void {
    const { ctx, canvas } = this;
    const width = (canvas.width = Math.max(200, canvas.clientWidth || 320));
    const perRow = d.layers.length > 8 ? 4 : 2;
    const chartW = width / perRow;
    const chartH = 46;
    const rows = Math.ceil(d.layers.length / perRow);
    canvas.height = Math.max(chartH, rows * chartH);
    ctx.fillStyle = '#14171e';
    ctx.fillRect(0, 0, width, canvas.height);
    ctx.font = '9px ui-monospace, monospace';
    ctx.textBaseline = 'top';

    this.legend.replaceChildren(
      ...d.domains.map((name) => {
        const item = document.createElement('span');
        item.className = 'legend-item';
        const swatch = document.createElement('i');
        swatch.style.background = domainColor(d.domains, name);
        item.append(swatch, document.createTextNode(name));
        return item;
      }),
    );

    d.layers.forEach((layer, i) => {
      const x0 = (i % perRow) * chartW + 4;
      const y0 = Math.floor(i / perRow) * chartH;
      const w = chartW - 8;
      const h = chartH - 14;
      const totals = new Float64Array(d.numExperts);
      for (const c of layer.counts) for (let e = 0; e < d.numExperts; e++) totals[e] += c[e];
      const peak = Math.max(1, ...totals);
      ctx.fillStyle = layer.layer === d.focus ? '#ffffff' : '#8a93a3';
      ctx.fillText(`L${layer.layer}`, x0, y0 + 1);
      const barW = w / d.numExperts;
      for (let e = 0; e < d.numExperts; e++) {
        let y = y0 + 12 + h;
        layer.counts.forEach((c, di) => {
          const bh = (c[e] / peak) * h;
          ctx.fillStyle = domainColor(d.domains, d.domains[di]);
          ctx.fillRect(x0 + e * barW, y - bh, Math.max(1, barW - (barW > 3 ? 1 : 0)), bh);
          y -= bh;
        });
      }
      ctx.strokeStyle = '#2a2f3a';
      ctx.beginPath();
      ctx.moveTo(x0, y0 + 12 + h + 0.5);
      ctx.lineTo(x0 + w, y0 + 12 + h + 0.5);
      ctx.stroke();
    });
  }
}
