// Exports: the session's routing trace as JSON or CSV (from a snapshot), and file downloads.
import { K_MAX, NO_EXPERT } from '../engine/routing-buffers';
import type { RoutingSnapshot } from '../engine/session-api';
import type { Dashboard } from './context';
import type { TokenInfo } from './stepper';

export interface TraceMeta {
  model: string;
  numLayers: number;
  numExperts: number;
  topK: number;
  /** The routing policy in force when the snapshot was taken. */
  policy: Record<string, unknown>;
}

export interface TraceToken {
  position: number;
  id: number;
  text: string;
  domain: string;
  /** Per layer: router's choices, the experts that processed the token (null = dropped), gate weights. */
  layers: { chosen: number[]; assigned: (number | null)[]; weights: number[] }[];
}

/** Tokens and their routing, from the snapshot's ring (positions past the ring are counted but not recorded). */
export function traceTokens(s: RoutingSnapshot, tokens: readonly TokenInfo[]): TraceToken[] {
  const T = Math.min(tokens.length, s.assigned.length / (s.numLayers * K_MAX));
  const out: TraceToken[] = [];
  for (let p = 0; p < T; p++) {
    const layers: TraceToken['layers'] = [];
    for (let l = 0; l < s.numLayers; l++) {
      const chosen: number[] = [];
      const assigned: (number | null)[] = [];
      const weights: number[] = [];
      for (let k = 0; k < K_MAX; k++) {
        const i = (p * s.numLayers + l) * K_MAX + k;
        if (s.chosen[i] === NO_EXPERT) continue;
        chosen.push(s.chosen[i]);
        assigned.push(s.assigned[i] === NO_EXPERT ? null : s.assigned[i]);
        weights.push(s.weights[i]);
      }
      layers.push({ chosen, assigned, weights });
    }
    const t = tokens[p];
    out.push({ position: p, id: t.id, text: t.text, domain: t.domain, layers });
  }
  return out;
}

export function traceJson(meta: TraceMeta, s: RoutingSnapshot, tokens: readonly TokenInfo[]): string {
  return JSON.stringify(
    {
      format: 'moescope-trace',
      version: 1,
      ...meta,
      position: s.position,
      counts: Array.from(s.counts),
      tokens: traceTokens(s, tokens),
    },
    null,
    1,
  );
}

/** RFC 4180 field: quoted when it holds a comma, quote or line break. */
export function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per (token, layer, slot): position,token_id,token_text,domain,layer,slot,chosen,assigned,weight. */
export function traceCsv(s: RoutingSnapshot, tokens: readonly TokenInfo[]): string {
  const lines = ['position,token_id,token_text,domain,layer,slot,chosen,assigned,weight'];
  for (const t of traceTokens(s, tokens)) {
    t.layers.forEach((layer, l) =>
      layer.chosen.forEach((c, k) =>
        lines.push(
          [t.position, t.id, csvField(t.text), csvField(t.domain), l, k, c, layer.assigned[k] ?? '', layer.weights[k]].join(','),
        ),
      ),
    );
  }
  return lines.join('\n') + '\n';
}

export function download(name: string, data: Blob | string, type = 'application/octet-stream'): void {
  const blob = typeof data === 'string' ? new Blob([data], { type }) : data;
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Download the current snapshot's routing trace, with the model and the policy in force. */
export function exportTrace(d: Dashboard, kind: 'json' | 'csv'): void {
  const s = d.snapshots.current;
  const model = d.model;
  const stepper = d.stepper;
  if (!s || !model || !stepper) throw new Error('Nothing to export yet: step through some tokens first.');
  const name = `moescope-trace-${model.name}-${s.position}`;
  if (kind === 'csv') {
    download(`${name}.csv`, traceCsv(s, stepper.processed), 'text/csv');
    return;
  }
  const { ablated, ...policy } = d.state.policy(model.config.router.topK);
  const meta: TraceMeta = {
    model: model.name,
    numLayers: model.config.numLayers,
    numExperts: model.config.numExperts,
    topK: d.state.params.topK || model.config.router.topK,
    policy: { ...policy, ablated: [...ablated.keys()].filter((i) => ablated[i]) },
  };
  download(`${name}.json`, traceJson(meta, s, stepper.processed), 'application/json');
}
