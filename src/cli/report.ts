// `moescope report TRACE --out report.html`: the figures of a trace for one static page (src/cli/report-html.ts).
// Per-layer loads and balance metrics over the whole trace, and expert-parallel placements side by side over steps
// of `stepTokens` tokens (counts-only traces: their own steps).
import { layerMetrics } from '../engine/routing/metrics';
import type { LayerMetrics } from '../engine/session-api';
import type { TraceFile } from '../trace/reader';
import { TraceTimeline } from '../trace/timeline';
import { comparePlacements, type PlacementSummary } from '../trace/placement';

export interface ReportOptions {
  gpus: number;
  /** Extra replicas per layer for the balanced placement. */
  replicas: number;
  capacityFactor: number;
  /** Tokens per step for the placement's per-step loads. */
  stepTokens: number;
}

export interface ReportData {
  file: string;
  trace: TraceFile['meta'];
  family: string;
  numLayers: number;
  /** Positions the trace spans: tokens, or steps of counts. */
  positions: number;
  unit: 'tokens' | 'steps';
  /** u32 [moeLayers, experts] over the whole trace. */
  counts: Uint32Array;
  /** f32 [moeLayers, experts] summed gate weights, or null (not recorded). */
  gateSum: Float32Array | null;
  /** Per MoE layer; auxLoss and zLoss only where `router` was recorded (see `notRecorded`). */
  metrics: LayerMetrics[];
  /** Tokens with known routing per MoE layer. */
  known: number[];
  notRecorded: string[];
  options: ReportOptions;
  steps: number;
  placements: PlacementSummary[];
}

/** Summed router probabilities (and z-loss sums from logits) per [layer, expert], streamed in chunks. */
async function routerSums(t: TraceFile): Promise<{ probMass: Float64Array; zLoss: Float64Array } | null> {
  const m = t.meta, kind = m.recorded.router;
  if (!kind) return null;
  const L = m.moeLayers.length, E = m.numExperts;
  const probMass = new Float64Array(L * E), zLoss = new Float64Array(L);
  const chunk = Math.max(1, Math.floor((16 << 20) / (L * E * 4)));
  for (let at = 0; at < m.numTokens; at += chunk) {
    const n = Math.min(chunk, m.numTokens - at);
    const r = (await t.router(at, n))!;
    for (let row = 0; row < n * L; row++) {
      const l = row % L, base = row * E;
      if (kind === 'probs') {
        for (let e = 0; e < E; e++) probMass[l * E + e] += r[base + e];
        continue;
      }
      let max = -Infinity, sum = 0;
      for (let e = 0; e < E; e++) max = Math.max(max, r[base + e]);
      for (let e = 0; e < E; e++) sum += Math.exp(r[base + e] - max);
      for (let e = 0; e < E; e++) probMass[l * E + e] += Math.exp(r[base + e] - max) / sum;
      zLoss[l] += (max + Math.log(sum)) ** 2;
    }
  }
  return { probMass, zLoss };
}

export async function reportData(t: TraceFile, o: ReportOptions): Promise<ReportData> {
  const m = t.meta, L = m.moeLayers.length, E = m.numExperts;
  const counted = m.countSteps > 0;
  const timeline = await TraceTimeline.build(t, { interval: o.stepTokens });
  const positions = timeline.length;
  const end = await timeline.stateAt(positions);
  const sums = await routerSums(t);
  const metrics = m.moeLayers.map((_, l) => {
    const row = <A extends { subarray(a: number, b: number): A }>(x: A) => x.subarray(l * E, (l + 1) * E);
    const tokens = counted ? 0 : end.known[l];
    return layerMetrics(
      {
        counts: row(end.counts),
        probMass: sums ? row(sums.probMass) : new Float64Array(E),
        zLossSum: sums ? sums.zLoss[l] : 0,
        dropped: new Uint32Array(E),
        rerouted: new Uint32Array(E),
      },
      tokens,
    );
  });
  const notRecorded = [
    !m.recorded.tokenIds && 'token ids',
    !m.recorded.tokenTexts && 'token texts',
    !m.recorded.weights && 'gate weights',
    !m.recorded.router && 'router probabilities (so the auxiliary loss is not known)',
    m.recorded.router !== 'logits' && 'router logits (so the z-loss is not known)',
    counted && 'per-token routing (counts per step only)',
  ].filter((x): x is string => typeof x === 'string');
  const { steps, placements } = await comparePlacements(timeline, 0, positions, L, E, { ...o, stepSize: counted ? 1 : o.stepTokens });
  return {
    file: t.name, trace: m, family: t.config.family, numLayers: t.config.numLayers,
    positions, unit: counted ? 'steps' : 'tokens',
    counts: end.counts, gateSum: end.gateSum, metrics, known: Array.from(end.known), notRecorded, options: o, steps, placements,
  };
}
