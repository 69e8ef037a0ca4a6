import { describe, expect, it } from 'vitest';
import { K_MAX, NO_EXPERT } from '../../src/engine/routing-buffers';
import type { RoutingSnapshot } from '../../src/engine/session-api';
import { csvField, traceCsv, traceJson, traceTokens } from '../../src/ui/export';

// 2 tokens, 1 layer, 4 experts, k = 2; token 1's second choice (expert 0) was dropped.
function snapshot(): RoutingSnapshot {
  const chosen = new Uint32Array(2 * K_MAX).fill(NO_EXPERT);
  const assigned = new Uint32Array(2 * K_MAX).fill(NO_EXPERT);
  const weights = new Float32Array(2 * K_MAX);
  chosen.set([2, 1], 0);
  assigned.set([2, 1], 0);
  weights.set([0.75, 0.25], 0);
  chosen.set([3, 0], K_MAX);
  assigned.set([3, NO_EXPERT], K_MAX);
  weights.set([0.5, 0.5], K_MAX);
  return {
    position: 2,
    numLayers: 1,
    numExperts: 4,
    counts: new Uint32Array([0, 1, 1, 1]),
    stepCounts: new Uint32Array([0, 0, 0, 1]),
    probMass: new Float32Array(4),
    gateSum: new Float32Array(4),
    dropped: new Uint32Array([1, 0, 0, 0]),
    nonFinite: [],
    rerouted: new Uint32Array(4),
    zLossSum: new Float32Array(1),
    chosen,
    assigned,
    weights,
    metrics: [],
  };
}

const tokens = [
  { id: 5, text: 'a,"b"', domain: 'prose' },
  { id: 9, text: '<x>\n', domain: 'code' },
];

describe('routing trace export', () => {
  it('lists each token with its chosen and assigned experts per layer, dropped as null', () => {
    const t = traceTokens(snapshot(), tokens);
    expect(t).toEqual([
      { position: 0, id: 5, text: 'a,"b"', domain: 'prose', layers: [{ chosen: [2, 1], assigned: [2, 1], weights: [0.75, 0.25] }] },
      { position: 1, id: 9, text: '<x>\n', domain: 'code', layers: [{ chosen: [3, 0], assigned: [3, null], weights: [0.5, 0.5] }] },
    ]);
    const json = JSON.parse(traceJson({ model: 'm', numLayers: 1, numExperts: 4, topK: 2, policy: { topK: null } }, snapshot(), tokens));
    expect(json).toMatchObject({ format: 'moescope-trace', version: 1, model: 'm', position: 2, counts: [0, 1, 1, 1] });
    expect(json.tokens).toHaveLength(2);
  });

  it('writes RFC 4180 CSV, quoting fields with commas, quotes and line breaks', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    const lines = traceCsv(snapshot(), tokens).trimEnd().split('\n');
    expect(lines[0]).toBe('position,token_id,token_text,domain,layer,slot,chosen,assigned,weight');
    expect(lines[1]).toBe('0,5,"a,""b""",prose,0,0,2,2,0.75');
    expect(lines[3]).toBe('1,9,"<x>');
    expect(lines[4]).toBe('",code,0,0,3,3,0.5');
    expect(lines[5]).toBe('1,9,"<x>');
    expect(lines[6]).toBe('",code,0,1,0,,0.5');
  });
});
