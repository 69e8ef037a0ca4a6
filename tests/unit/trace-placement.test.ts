// Expert-parallel placements and the static report: loads per GPU, straggler ratios and capacity drops on loads
// worked out by hand, the balanced map's rules, and a report page that needs nothing but itself.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { balancedPlacement, droppedAtCapacity, fixedPlacement, gpuLoads, stragglerRatio, summarizePlacement } from '../../src/trace/placement';
import { MemorySource } from '../../src/io/source';
import { TraceFile } from '../../src/trace/reader';
import { encodeTrace } from '../../src/trace/writer';
import { reportData } from '../../src/cli/report';
import { reportHtml } from '../../src/cli/report-html';
import { synthTrace } from '../support/trace';

// One layer, 8 experts: expert 0 is hot.
const HOT = [10, 1, 1, 1, 1, 1, 1, 1];

describe('placements', () => {
  it('contiguous and round-robin per-GPU loads, straggler ratio and drops, by hand', () => {
    const c = gpuLoads(fixedPlacement('contiguous', 1, 8, 4), HOT, 8);
    expect(Array.from(c)).toEqual([11, 2, 2, 2]);
    expect(stragglerRatio(c)).toBeCloseTo(11 / (17 / 4), 12);
    expect(droppedAtCapacity(c, 1)).toBe(6); // capacity ⌈17/4⌉ = 5 on each GPU
    expect(droppedAtCapacity(c, 0)).toBe(0);
    const r = gpuLoads(fixedPlacement('round-robin', 1, 8, 4), [1, 2, 3, 4, 5, 6, 7, 8], 8);
    expect(Array.from(r)).toEqual([1 + 5, 2 + 6, 3 + 7, 4 + 8]);
  });

  it('balanced: replicas go to the hottest expert, on distinct GPUs, within the slots, and even the load out', () => {
    const p = balancedPlacement(HOT, 1, 8, 4, 2);
    expect(p.hosts[0][0]).toHaveLength(3);
    expect(new Set(p.hosts[0][0]).size).toBe(3);
    const loads = gpuLoads(p, HOT, 8);
    expect(loads.reduce((a, b) => a + b, 0)).toBeCloseTo(17, 12);
    expect(stragglerRatio(loads)).toBeLessThan(stragglerRatio(gpuLoads(fixedPlacement('contiguous', 1, 8, 4), HOT, 8)));
  });

  it('any loads: every expert hosted, no GPU over its slots, total load kept (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1000), { minLength: 16, maxLength: 16 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 16 }), (loads, gpus, replicas) => {
        const p = balancedPlacement(loads, 1, 16, gpus, Math.min(replicas, 16 * (gpus - 1)));
        const slots = new Array(gpus).fill(0);
        p.hosts[0].forEach((h) => {
          expect(h.length).toBeGreaterThan(0);
          expect(new Set(h).size).toBe(h.length);
          h.forEach((g) => slots[g]++);
        });
        expect(Math.max(...slots)).toBeLessThanOrEqual(Math.ceil((16 + p.replicas) / gpus));
        expect(gpuLoads(p, loads, 16).reduce((a, b) => a + b, 0)).toBeCloseTo(loads.reduce((a, b) => a + b, 0), 6);
      }),
    );
  });

  it('summaries over steps average the straggler ratio of steps with load', () => {
    const s = summarizePlacement(fixedPlacement('contiguous', 1, 8, 4), [HOT, new Array(8).fill(0), [1, 1, 1, 1, 1, 1, 1, 1]], 8, 1);
    expect(s.meanStraggler).toBeCloseTo((11 / (17 / 4) + 1) / 2, 12);
    expect(s.worstStraggler).toBeCloseTo(11 / (17 / 4), 12);
    expect(s.droppedShare).toBeCloseTo(6 / 25, 12);
  });
});

describe('moescope report', () => {
  const qwen3 = JSON.parse(readFileSync('tests/fixtures/qwen3_moe/config.json', 'utf8'));
  const build = async (weights: boolean, probs: boolean) => {
    const { meta, arrays } = synthTrace(qwen3, { tokens: 700, sequences: 3, weights, probs });
    const t = await TraceFile.open(new MemorySource('run.trace', encodeTrace(meta, arrays)));
    return reportData(t, { gpus: 4, replicas: 4, capacityFactor: 1.25, stepTokens: 128 });
  };

  it('is one page with no external resource or script, and figures from the trace', async () => {
    const d = await build(true, true);
    expect(d.steps).toBe(6);
    expect(d.counts.reduce((a, b) => a + b, 0)).toBe(700 * 2 * 4);
    const html = reportHtml(d);
    expect(html).not.toMatch(/<script|<link|src=|href=|url\(/i);
    expect(html).toContain('<svg');
    // Aux loss from the probabilities; only the z-loss (which needs logits) is not recorded.
    const row = /<tr><td>0<\/td>[\s\S]*?<\/tr>/.exec(html)![0];
    expect(row.match(/not recorded/g)).toHaveLength(1);
    expect(d.metrics[0].auxLoss).toBeGreaterThan(0);
    expect(d.notRecorded).toEqual(['token texts', 'router logits (so the z-loss is not known)']);
    // The skewed synthetic loads: the balanced placement beats contiguous.
    const [contiguous, , balanced] = d.placements;
    expect(balanced.meanStraggler).toBeLessThan(contiguous.meanStraggler);
  });

  it('says "not recorded" where weights and probabilities are missing, never 0', async () => {
    const html = reportHtml(await build(false, false));
    const row = /<tr><td>0<\/td>[\s\S]*?<\/tr>/.exec(html)![0];
    expect(row.match(/not recorded/g)).toHaveLength(3); // mean gate weight, aux loss, z-loss
    expect(html).toMatch(/Not recorded by the source: token texts; gate weights; router probabilities/);
  });
});
