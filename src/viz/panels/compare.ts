// Compare two checkpoints of one architecture on the same tokens: per-layer agreement of their routing and a
// tokens × layers map of where they differ (canvas 2D).
import { colormapCss } from '../colormaps';
import { visible } from './heatmap';

export interface CompareData {
  /** Names of the two runs, e.g. "final" and "early (5%)". */
  names: [string, string];
  perLayer: number[];
  /** [tokens, layers] agreement in [0, 1]. */
  perToken: Float32Array;
  labels: readonly string[];
  moeLayers: readonly boolean[];
}

const MAX_ROWS = 36;

export function drawCompare(canvas: HTMLCanvasElement, d: CompareData): void {
  const ctx = canvas.getContext('2d')!;
  const width = (canvas.width = Math.max(240, canvas.clientWidth || 340));
  const L = d.perLayer.length;
  const T = d.labels.length;
  const rows = Math.min(MAX_ROWS, T);
  const first = T - rows;
  const rowH = 9;
  const barsH = 40;
  canvas.height = 20 + barsH + 16 + rows * rowH + 22;
  ctx.fillStyle = '#14171e';
  ctx.fillRect(0, 0, width, canvas.height);
  ctx.font = '10px ui-monospace, monospace';
  ctx.textBaseline = 'top';
  const moe = d.perLayer.map((a, l) => (d.moeLayers[l] ? a : null)).filter((a): a is number => a !== null);
  const mean = moe.length ? moe.reduce((s, a) => s + a, 0) / moe.length : 0;
  ctx.fillStyle = '#c8cfdb';
  ctx.fillText(`${(mean * 100).toFixed(1)}% of expert choices shared (MoE layers, ${T} tokens)`, 4, 2);

  const colW = (width - 80) / L;
  d.perLayer.forEach((a, l) => {
    const x = 76 + l * colW;
    ctx.fillStyle = '#232834';
    ctx.fillRect(x, 18, Math.max(1, colW - 2), barsH);
    if (d.moeLayers[l]) {
      ctx.fillStyle = colormapCss('coolwarm', 1 - a);
      ctx.fillRect(x, 18 + barsH * (1 - a), Math.max(1, colW - 2), barsH * a);
    }
    if (colW >= 14) {
      ctx.fillStyle = '#9aa3b2';
      ctx.fillText(`L${l}`, x, 18 + barsH + 2);
    }
  });
  ctx.fillStyle = '#9aa3b2';
  ctx.fillText('agreement', 2, 18);
  ctx.fillText('per layer', 2, 30);

  const top = 18 + barsH + 16;
  // Colour key under the map: share of experts in common, from all (blue) to none (red).
  const keyY = top + rows * rowH + 6;
  for (let i = 0; i < 60; i++) {
    ctx.fillStyle = colormapCss('coolwarm', i / 59);
    ctx.fillRect(76 + i * 2, keyY, 2, 10);
  }
  ctx.fillStyle = '#9aa3b2';
  ctx.fillText('all', 56, keyY);
  ctx.fillText(`none of a token's experts in common (${d.names[0]} vs ${d.names[1]})`, 76 + 124, keyY);
  for (let r = 0; r < rows; r++) {
    const p = first + r;
    const y = top + r * rowH;
    ctx.fillStyle = '#c8cfdb';
    ctx.fillText(visible(d.labels[p]).slice(0, 11), 2, y);
    for (let l = 0; l < L; l++) {
      if (!d.moeLayers[l]) continue;
      // Same experts: blue; different: red.
      ctx.fillStyle = colormapCss('coolwarm', 1 - d.perToken[p * L + l]);
      ctx.fillRect(76 + l * colW, y, Math.max(1, colW - 2), rowH - 1);
    }
  }
}
