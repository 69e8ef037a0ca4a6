// Figures as standalone SVG text (labelled axes, tick labels, a colour legend), for the corpus, pathway and atlas
// analyses: heatmap panels that share a colour scale, and grouped bars. No DOM: the CLI writes the strings to files.

export interface HeatmapPanel {
  /** Panel title (e.g. the domain). */
  title: string;
  /** [rows][cols] */
  values: number[][];
}

export interface HeatmapFigure {
  title: string;
  xLabel: string;
  yLabel: string;
  xTicks: string[];
  yTicks: string[];
  panels: HeatmapPanel[];
  /** What the colour encodes (legend caption). */
  valueLabel: string;
  /** 'sequential' runs from the minimum to the maximum; 'diverging' is centred on 0 (blue < 0 < red). */
  scale: 'sequential' | 'diverging';
  /** Print each cell's value with this many decimals (omit for no numbers). */
  cellDecimals?: number;
}

export interface BarFigure {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Categories along x. */
  groups: string[];
  series: { name: string; values: number[] }[];
}

const FONT = 'font-family="sans-serif"';
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];
const VIRIDIS = ['#440154', '#3b528b', '#21918c', '#5ec962', '#fde725'];

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function hex(c: string): number[] {
  return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
}

function mix(a: string, b: string, t: number): string {
  const x = hex(a);
  const y = hex(b);
  return `rgb(${x.map((v, i) => Math.round(v + (y[i] - v) * t)).join(',')})`;
}

/** Colour of `v` on a scale (t in [0, 1] along the stops). */
export function colourAt(v: number, lo: number, hi: number, scale: HeatmapFigure['scale']): string {
  if (scale === 'diverging') {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    const t = Math.max(-1, Math.min(1, v / m));
    return t < 0 ? mix('#f7f7f7', '#2166ac', -t) : mix('#f7f7f7', '#b2182b', t);
  }
  const t = hi > lo ? Math.max(0, Math.min(1, (v - lo) / (hi - lo))) : 0;
  const at = t * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(at));
  return mix(VIRIDIS[i], VIRIDIS[i + 1], at - i);
}

const text = (x: number, y: number, s: string, extra = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${FONT} ${extra}>${escapeXml(s)}</text>`;

export function heatmapSvg(f: HeatmapFigure): string {
  const rows = f.yTicks.length;
  const cols = f.xTicks.length;
  const cell = Math.max(14, Math.min(40, Math.floor(360 / Math.max(rows, cols))));
  const left = 70 + Math.max(...f.yTicks.map((t) => t.length)) * 6;
  const top = 56;
  const gap = 30;
  const panelW = cols * cell;
  const legendW = Math.max(90, 30 + f.valueLabel.length * 6);
  // Wide enough for the title (about 8.5 px per character at 15 px).
  const width = Math.max(left + f.panels.length * (panelW + gap) + legendW, Math.ceil(f.title.length * 8.5) + 40);
  const height = top + rows * cell + 60;
  const all = f.panels.flatMap((p) => p.values.flat());
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    text(width / 2, 20, f.title, 'font-size="15" text-anchor="middle" font-weight="bold"'),
  ];
  f.panels.forEach((p, k) => {
    const x0 = left + k * (panelW + gap);
    out.push(text(x0 + panelW / 2, top - 22, p.title, 'font-size="13" text-anchor="middle"'));
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const v = p.values[r][c];
        const x = x0 + c * cell;
        const y = top + r * cell;
        out.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${colourAt(v, lo, hi, f.scale)}"><title>${escapeXml(`${f.yTicks[r]}, ${f.xTicks[c]}: ${v}`)}</title></rect>`);
        if (f.cellDecimals !== undefined && cell >= 24) {
          const t = f.scale === 'diverging' ? 0 : (v - lo) / (hi - lo || 1);
          out.push(text(x + cell / 2, y + cell / 2 + 3, v.toFixed(f.cellDecimals), `font-size="8" text-anchor="middle" fill="${t > 0.6 ? 'black' : f.scale === 'diverging' ? 'black' : 'white'}"`));
        }
      }
    }
    f.xTicks.forEach((t, c) => out.push(text(x0 + c * cell + cell / 2, top + rows * cell + 13, t, 'font-size="10" text-anchor="middle"')));
    if (k === 0) f.yTicks.forEach((t, r) => out.push(text(x0 - 5, top + r * cell + cell / 2 + 4, t, 'font-size="10" text-anchor="end"')));
    out.push(text(x0 + panelW / 2, top + rows * cell + 32, f.xLabel, 'font-size="12" text-anchor="middle"'));
  });
  const yMid = top + (rows * cell) / 2;
  out.push(text(16, yMid, f.yLabel, `font-size="12" text-anchor="middle" transform="rotate(-90 16 ${yMid})"`));
  // Legend: a vertical colour bar with its end values.
  const lx = width - legendW + 20;
  const lh = Math.max(60, rows * cell);
  for (let i = 0; i < 20; i++) {
    const v = hi - ((hi - lo) * i) / 19;
    out.push(`<rect x="${lx}" y="${top + (i * lh) / 20}" width="14" height="${lh / 20 + 0.5}" fill="${colourAt(v, lo, hi, f.scale)}"/>`);
  }
  const fmt = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  out.push(text(lx + 18, top + 9, fmt(f.scale === 'diverging' ? Math.max(Math.abs(lo), Math.abs(hi)) : hi), 'font-size="10"'));
  out.push(text(lx + 18, top + lh, fmt(f.scale === 'diverging' ? -Math.max(Math.abs(lo), Math.abs(hi)) : lo), 'font-size="10"'));
  out.push(text(lx, top + lh + 16, f.valueLabel, 'font-size="10"'));
  out.push('</svg>');
  return out.join('\n');
}

export function barsSvg(f: BarFigure): string {
  const plotW = Math.max(240, f.groups.length * (f.series.length * 16 + 16));
  const plotH = 220;
  const left = 64;
  const top = 40;
  const width = left + plotW + Math.max(150, 40 + Math.max(...f.series.map((x) => x.name.length)) * 7);
  const height = top + plotH + 56;
  const max = Math.max(...f.series.flatMap((s) => s.values), 0);
  const min = Math.min(...f.series.flatMap((s) => s.values), 0);
  const span = max - min || 1;
  const y = (v: number) => top + plotH - ((v - min) / span) * plotH;
  const groupW = plotW / f.groups.length;
  const barW = (groupW - 12) / f.series.length;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    text(left + plotW / 2, 20, f.title, 'font-size="15" text-anchor="middle" font-weight="bold"'),
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="black"/>`,
    `<line x1="${left}" y1="${y(0)}" x2="${left + plotW}" y2="${y(0)}" stroke="black"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = min + (span * i) / 4;
    out.push(`<line x1="${left - 4}" y1="${y(v)}" x2="${left}" y2="${y(v)}" stroke="black"/>`);
    out.push(text(left - 6, y(v) + 4, v.toPrecision(3), 'font-size="10" text-anchor="end"'));
  }
  f.groups.forEach((g, gi) => {
    const gx = left + gi * groupW + 6;
    f.series.forEach((s, si) => {
      const v = s.values[gi];
      const top0 = Math.min(y(v), y(0));
      out.push(`<rect x="${(gx + si * barW).toFixed(1)}" y="${top0.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${Math.abs(y(v) - y(0)).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"><title>${escapeXml(`${s.name}, ${g}: ${v}`)}</title></rect>`);
    });
    out.push(text(gx + (groupW - 12) / 2, top + plotH + 14, g, 'font-size="10" text-anchor="middle"'));
  });
  out.push(text(left + plotW / 2, top + plotH + 36, f.xLabel, 'font-size="12" text-anchor="middle"'));
  const yMid = top + plotH / 2;
  out.push(text(14, yMid, f.yLabel, `font-size="12" text-anchor="middle" transform="rotate(-90 14 ${yMid})"`));
  f.series.forEach((s, si) => {
    const ly = top + 10 + si * 18;
    out.push(`<rect x="${left + plotW + 16}" y="${ly - 9}" width="12" height="12" fill="${PALETTE[si % PALETTE.length]}"/>`);
    out.push(text(left + plotW + 32, ly + 1, s.name, 'font-size="11"'));
  });
  out.push('</svg>');
  return out.join('\n');
}
