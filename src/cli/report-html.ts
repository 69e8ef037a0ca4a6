// One self-contained static page from ReportData: inline CSS and SVG, no script, no external file: opens offline.
import { colormap } from '../viz/colormaps';
import type { ReportData } from './report';
import type { PlacementSummary } from '../trace/placement';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const rgb = (t: number) => `rgb(${colormap('viridis', t).map(Math.round).join(',')})`;
const fmt = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

/** Layers × experts heat of each expert's share of its layer's assignments (colour scaled to the largest share). */
function heatmap(d: ReportData): string {
  const L = d.trace.moeLayers.length, E = d.trace.numExperts;
  const cell = Math.max(2, Math.min(14, Math.floor(900 / E))), rowH = Math.max(4, Math.min(14, Math.floor(600 / L)));
  const shares = new Float64Array(L * E);
  let max = 0;
  for (let l = 0; l < L; l++) {
    let sum = 0;
    for (let e = 0; e < E; e++) sum += d.counts[l * E + e];
    for (let e = 0; e < E; e++) max = Math.max(max, (shares[l * E + e] = sum > 0 ? d.counts[l * E + e] / sum : 0));
  }
  const rects: string[] = [];
  for (let l = 0; l < L; l++) {
    for (let e = 0; e < E; e++) {
      const s = shares[l * E + e];
      rects.push(`<rect x="${40 + e * cell}" y="${l * rowH}" width="${cell}" height="${rowH}" fill="${rgb(max > 0 ? s / max : 0)}"><title>layer ${d.trace.moeLayers[l]}, expert ${e}: ${d.counts[l * E + e]} (${pct(s)})</title></rect>`);
    }
    if (L <= 64 || l % Math.ceil(L / 32) === 0) rects.push(`<text x="36" y="${l * rowH + rowH - 1}" text-anchor="end">${d.trace.moeLayers[l]}</text>`);
  }
  return `<svg class="heat" width="${40 + E * cell}" height="${L * rowH + 4}" role="img" aria-label="load heatmap">${rects.join('')}</svg>
  <p class="note">Rows: MoE layers; columns: experts 0–${E - 1}; colour: share of the layer's assignments (brightest = ${pct(max)}).</p>`;
}

/** One layer's expert loads as a tiny bar strip. */
function bars(d: ReportData, l: number): string {
  const E = d.trace.numExperts, w = Math.max(1, Math.floor(256 / E));
  let max = 0;
  for (let e = 0; e < E; e++) max = Math.max(max, d.counts[l * E + e]);
  const r: string[] = [];
  for (let e = 0; e < E; e++) {
    const h = max > 0 ? (18 * d.counts[l * E + e]) / max : 0;
    r.push(`<rect x="${e * w}" y="${18 - h}" width="${w}" height="${h}"/>`);
  }
  return `<svg class="bars" width="${E * w}" height="18">${r.join('')}</svg>`;
}

function layerTable(d: ReportData): string {
  const E = d.trace.numExperts;
  const probs = d.trace.recorded.router !== null, logits = d.trace.recorded.router === 'logits';
  const rows = d.trace.moeLayers.map((layer, l) => {
    const m = d.metrics[l];
    let total = 0, max = 0, gate = 0;
    for (let e = 0; e < E; e++) {
      total += d.counts[l * E + e];
      max = Math.max(max, d.counts[l * E + e]);
      if (d.gateSum) gate += d.gateSum[l * E + e];
    }
    return `<tr><td>${layer}</td><td>${d.unit === 'tokens' ? d.known[l] : '–'}</td><td>${total}</td><td>${fmt(total > 0 ? max / (total / E) : 0, 2)}</td>
      <td>${fmt(m.cv)}</td><td>${fmt(m.entropy)}</td><td>${fmt(m.balancedness)}</td><td>${m.deadExperts}</td>
      <td>${d.gateSum ? fmt(total > 0 ? gate / total : 0) : '<i>not recorded</i>'}</td>
      <td>${probs ? fmt(m.auxLoss) : '<i>not recorded</i>'}</td><td>${logits ? fmt(m.zLoss) : '<i>not recorded</i>'}</td><td>${bars(d, l)}</td></tr>`;
  });
  return `<table><thead><tr><th>layer</th><th>tokens known</th><th>assignments</th><th>max / mean</th><th>load CV</th><th>entropy (nats)</th>
    <th>balancedness</th><th>dead experts</th><th>mean gate weight</th><th>aux loss</th><th>z-loss</th><th>expert loads</th></tr></thead>
    <tbody>${rows.join('')}</tbody></table>`;
}

function placementBlock(d: ReportData, p: PlacementSummary): string {
  const L = d.trace.moeLayers.length, G = p.gpus;
  const total = new Float64Array(L * G);
  for (const s of p.steps) s.forEach((v, i) => (total[i] += v));
  let max = 0;
  total.forEach((v) => (max = Math.max(max, v)));
  const cw = Math.max(4, Math.min(24, Math.floor(240 / G))), rh = Math.max(3, Math.min(10, Math.floor(300 / L)));
  const cells: string[] = [];
  for (let l = 0; l < L; l++) {
    for (let g = 0; g < G; g++) {
      cells.push(`<rect x="${g * cw}" y="${l * rh}" width="${cw}" height="${rh}" fill="${rgb(max > 0 ? total[l * G + g] / max : 0)}"><title>layer ${d.trace.moeLayers[l]}, GPU ${g}: ${Math.round(total[l * G + g])}</title></rect>`);
    }
  }
  const sw = 240, worst = Math.max(...p.layerStraggler, 1);
  const strag = p.layerStraggler.map((r, l) => `<rect x="0" y="${l * rh}" width="${(sw * r) / worst}" height="${Math.max(1, rh - 1)}"><title>layer ${d.trace.moeLayers[l]}: ${fmt(r, 2)}</title></rect>`);
  const label = p.kind === 'balanced' ? `balanced (EPLB-style, ${p.replicas} replicas per layer)` : p.kind;
  return `<div class="placement"><h3>${esc(label)}</h3>
    <p>straggler ratio (max ÷ mean GPU load): mean <b>${fmt(p.meanStraggler, 2)}</b>, worst <b>${fmt(p.worstStraggler, 2)}</b>;
    dropped at capacity factor ${d.options.capacityFactor}: <b>${pct(p.droppedShare)}</b></p>
    <div class="pair"><figure><svg width="${G * cw}" height="${L * rh}">${cells.join('')}</svg><figcaption>load per layer (rows) × GPU</figcaption></figure>
    <figure><svg class="strag" width="${sw}" height="${L * rh}">${strag.join('')}</svg><figcaption>straggler ratio per layer (longest ${fmt(worst, 2)})</figcaption></figure></div></div>`;
}

/** Per-step mean straggler ratio (over layers) of every placement, as lines. */
function stepChart(d: ReportData): string {
  const W = 720, H = 160, S = d.steps;
  if (S < 2) return '';
  const series = d.placements.map((p) =>
    p.steps.map((g) => {
      const L = d.trace.moeLayers.length, G = p.gpus;
      let sum = 0, n = 0;
      for (let l = 0; l < L; l++) {
        const row = g.subarray(l * G, (l + 1) * G);
        const tot = row.reduce((a, b) => a + b, 0);
        if (tot === 0) continue;
        sum += Math.max(...row) / (tot / G);
        n++;
      }
      return n > 0 ? sum / n : 1;
    }),
  );
  const top = Math.max(1.05, ...series.flat());
  const colours = ['#e4572e', '#29335c', '#17bebb'];
  const lines = series.map((s, i) => {
    const pts = s.map((v, j) => `${((W - 40) * j) / (S - 1) + 40},${H - 16 - ((H - 24) * (v - 1)) / (top - 1)}`).join(' ');
    return `<polyline fill="none" stroke="${colours[i]}" stroke-width="1.5" points="${pts}"/>`;
  });
  const legend = d.placements.map((p, i) => `<tspan fill="${colours[i]}">■ ${p.kind} </tspan>`).join('');
  return `<svg width="${W}" height="${H + 14}">${lines.join('')}<text x="40" y="${H + 10}">${legend}</text>
    <text x="36" y="12" text-anchor="end">${fmt(top, 2)}</text><text x="36" y="${H - 14}" text-anchor="end">1</text></svg>
    <p class="note">Mean straggler ratio over layers, per step of ${d.unit === 'tokens' ? `${d.options.stepTokens} tokens` : 'the recorded steps'} (${S} steps).</p>`;
}

export function reportHtml(d: ReportData): string {
  const m = d.trace, src = m.source;
  const facts = [
    ['model', `${d.family}, ${d.numLayers} layers (${m.moeLayers.length} MoE), ${m.numExperts} experts, top-${m.topK}`],
    ['trace', `${d.positions} ${d.unit}${d.unit === 'tokens' ? ` in ${m.sequences.length} sequence(s), ${m.sequences.reduce((n, s) => n + s.length - s.promptLength, 0)} generated` : ''}`],
    ['source', [src.engine, src.version, src.dtype].filter(Boolean).join(' · ')],
    ['parallelism', src.parallelism ?? 'not stated'],
    ['tokenizer', m.tokenizer ?? 'not stated'],
  ];
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>moescope report: ${esc(d.file)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fbfbfd}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #e3e5ea;text-align:right}th{background:#f0f1f5}
.heat text,.bars{font-size:9px}.bars rect{fill:#3b528b}.strag rect{fill:#e4572e}.note{color:#5b6270;font-size:12px}
.placements{display:flex;gap:24px;flex-wrap:wrap}.placement{border:1px solid #e3e5ea;padding:8px 12px;border-radius:6px;background:#fff}
.pair{display:flex;gap:16px}figure{margin:0}figcaption{font-size:11px;color:#5b6270}.missing{color:#9a3412}dt{font-weight:600}
</style></head><body>
<h1>moescope report: ${esc(d.file)}</h1>
<dl>${facts.map(([k, v]) => `<dt>${k}</dt><dd>${esc(String(v))}</dd>`).join('')}</dl>
${d.notRecorded.length ? `<p class="missing">Not recorded by the source: ${esc(d.notRecorded.join('; '))}. Figures that need them say so instead of showing zeros.</p>` : ''}
<h2>Load heatmap</h2>${heatmap(d)}
<h2>Per-layer load and balance</h2>${layerTable(d)}
<h2>Expert-parallel placement on ${d.options.gpus} GPUs</h2>
<p class="note">Loads are assignments (tokens × k). Capacity: each GPU processes at most ⌈${d.options.capacityFactor} · assignments / ${d.options.gpus}⌉ per layer and step; the rest is dropped.</p>
<div class="placements">${d.placements.map((p) => placementBlock(d, p)).join('')}</div>
${stepChart(d)}
</body></html>
`;
}
