// Expert inspector for one layer: weight norms per expert and the cosine similarity between experts' weights and
// between their router rows. Experts are trained from a random start, so their index carries no meaning: the
// similarity matrix has no structure along its diagonal bands, which is what it is here to show.
import { colormapCss, type ColormapName } from '../colormaps';

export interface ExpertWeights {
  /** [E] flattened gate+up projection of each expert ([2I, H] values). */
  gateUp: Float32Array[];
  /** [E] flattened down projection ([H, I] values). */
  down: Float32Array[];
  /** [E] router row of each expert ([H] values). */
  router: Float32Array[];
}

export interface ExpertNorms {
  gateUp: number[];
  down: number[];
  router: number[];
}

function norm(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** Frobenius norm of every expert's matrices and of its router row. */
export function expertNorms(w: ExpertWeights): ExpertNorms {
  return { gateUp: w.gateUp.map(norm), down: w.down.map(norm), router: w.router.map(norm) };
}

/** [E, E] cosine similarity between the vectors (float64 accumulation; 0 for a zero vector). */
export function cosineMatrix(vectors: readonly Float32Array[]): Float64Array {
  const E = vectors.length;
  const norms = vectors.map(norm);
  const out = new Float64Array(E * E);
  for (let a = 0; a < E; a++) {
    for (let b = a; b < E; b++) {
      const x = vectors[a];
      const y = vectors[b];
      if (x.length !== y.length) throw new Error(`cosineMatrix: vectors ${a} and ${b} differ in length`);
      let dot = 0;
      for (let i = 0; i < x.length; i++) dot += x[i] * y[i];
      const c = norms[a] > 0 && norms[b] > 0 ? dot / (norms[a] * norms[b]) : 0;
      out[a * E + b] = c;
      out[b * E + a] = c;
    }
  }
  return out;
}

/** Concatenation of each expert's gate+up and down weights: one vector per expert for the similarity. */
export function expertVectors(w: ExpertWeights): Float32Array[] {
  return w.gateUp.map((g, e) => {
    const v = new Float32Array(g.length + w.down[e].length);
    v.set(g, 0);
    v.set(w.down[e], g.length);
    return v;
  });
}

export interface InspectorData {
  layer: number;
  norms: ExpertNorms;
  /** [E, E] similarity of the experts' weights. */
  weightSimilarity: Float64Array;
  /** [E, E] similarity of the router rows. */
  routerSimilarity: Float64Array;
  colormap: ColormapName;
}

/** Draws the two similarity matrices side by side and the norm bars below. */
export function drawInspector(canvas: HTMLCanvasElement, d: InspectorData): void {
  const ctx = canvas.getContext('2d')!;
  const width = (canvas.width = Math.max(240, canvas.clientWidth || 340));
  const E = d.norms.gateUp.length;
  const matrix = Math.min(150, (width - 24) / 2);
  const barsTop = matrix + 34;
  canvas.height = barsTop + 66;
  ctx.fillStyle = '#14171e';
  ctx.fillRect(0, 0, width, canvas.height);
  ctx.font = '10px ui-monospace, monospace';
  ctx.textBaseline = 'top';
  ctx.fillStyle = '#9aa3b2';
  const drawMatrix = (m: Float64Array, x0: number, title: string) => {
    ctx.fillStyle = '#9aa3b2';
    ctx.fillText(title, x0, 2);
    const cell = matrix / E;
    for (let a = 0; a < E; a++) {
      for (let b = 0; b < E; b++) {
        // Cosine in [-1, 1] on a diverging map; the diagonal is 1 by definition.
        ctx.fillStyle = colormapCss('coolwarm', (m[a * E + b] + 1) / 2);
        ctx.fillRect(x0 + b * cell, 16 + a * cell, Math.max(1, cell - (cell > 4 ? 1 : 0)), Math.max(1, cell - (cell > 4 ? 1 : 0)));
      }
    }
  };
  drawMatrix(d.weightSimilarity, 4, `L${d.layer} expert weights (cos)`);
  drawMatrix(d.routerSimilarity, 16 + matrix, 'router rows (cos)');
  ctx.fillStyle = '#9aa3b2';
  ctx.fillText('-1', 4, matrix + 18);
  ctx.fillText('+1', matrix - 10, matrix + 18);

  const series: [string, number[]][] = [
    ['‖gate,up‖', d.norms.gateUp],
    ['‖down‖', d.norms.down],
    ['‖router‖', d.norms.router],
  ];
  const barW = (width - 70) / E;
  series.forEach(([name, values], row) => {
    const y = barsTop + row * 22;
    const peak = Math.max(...values, 1e-12);
    ctx.fillStyle = '#9aa3b2';
    ctx.fillText(name, 2, y + 4);
    values.forEach((v, e) => {
      const h = (v / peak) * 18;
      ctx.fillStyle = colormapCss(d.colormap, 0.25 + 0.75 * (v / peak));
      ctx.fillRect(66 + e * barW, y + 18 - h, Math.max(1, barW - 1), h);
    });
  });
}
