import { describe, expect, it } from 'vitest';
import { cosineMatrix, expertNorms, expertVectors } from '../../src/viz/panels/inspector';

describe('expert inspector maths', () => {
  it('gives Frobenius norms per expert', () => {
    const n = expertNorms({
      gateUp: [Float32Array.of(3, 4), Float32Array.of(0, 0)],
      down: [Float32Array.of(1, 0, 0), Float32Array.of(0, 2, 0)],
      router: [Float32Array.of(1, 1), Float32Array.of(-2, 0)],
    });
    expect(n.gateUp).toEqual([5, 0]);
    expect(n.down).toEqual([1, 2]);
    expect(n.router[0]).toBeCloseTo(Math.SQRT2, 6);
  });

  it('builds a symmetric cosine matrix with a unit diagonal, 0 for zero vectors, and follows a permutation', () => {
    const v = [Float32Array.of(1, 0, 0), Float32Array.of(1, 1, 0), Float32Array.of(0, 0, 0), Float32Array.of(-1, 0, 0)];
    const m = cosineMatrix(v);
    expect(m[0]).toBe(1);
    expect(m[1]).toBeCloseTo(Math.SQRT1_2, 12);
    expect(m[1 * 4 + 0]).toBe(m[1]);
    expect(m[2 * 4 + 2]).toBe(0);
    expect(m[3]).toBe(-1);
    // Renumbering the experts permutes rows and columns alike: numbering carries no information.
    const perm = [2, 0, 3, 1];
    const p = cosineMatrix(perm.map((i) => v[i]));
    for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) expect(p[a * 4 + b]).toBe(m[perm[a] * 4 + perm[b]]);
    expect(() => cosineMatrix([Float32Array.of(1), Float32Array.of(1, 2)])).toThrow(/differ in length/);
  });

  it('concatenates gate+up and down into one vector per expert', () => {
    const v = expertVectors({ gateUp: [Float32Array.of(1, 2)], down: [Float32Array.of(3)], router: [Float32Array.of(0)] });
    expect(Array.from(v[0])).toEqual([1, 2, 3]);
  });
});

import { readFileSync } from 'node:fs';
import { countParameters } from '../../src/model/config';
import { normalizeConfig } from '../../src/io/config';
import { layerModules } from '../../src/viz/panels/module-view';

describe('module view parameter counts', () => {
  it('add up over the layers to the model totals (published configs)', () => {
    for (const file of ['mixtral-8x7b.json', 'qwen1.5-moe-a2.7b.json', 'olmoe-1b-7b.json', 'deepseek-v2-lite.json', 'deepseek-v3.json']) {
      const c = normalizeConfig(JSON.parse(readFileSync(`public/configs/${file}`, 'utf8')), file);
      const total = countParameters(c);
      const sum = { attention: 0, router: 0, experts: 0, shared: 0, dense: 0, norms: 0 };
      for (let l = 0; l < c.numLayers; l++) {
        const m = layerModules(c, l);
        for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += m[k];
      }
      expect(sum.attention).toBeCloseTo(total.attention, 0);
      expect(sum.router).toBe(total.router);
      expect(sum.experts).toBe(total.routedExperts);
      expect(sum.shared).toBe(total.sharedExperts);
      expect(sum.dense).toBe(total.dense);
      expect(sum.norms + c.hiddenSize).toBe(total.norms);
    }
  });

  it('reads the published totals: Mixtral-8x7B 46.7B with 12.9B active, DeepSeek-V3 671B, DeepSeek-V2-Lite exactly', () => {
    const load = (f: string) => normalizeConfig(JSON.parse(readFileSync(`public/configs/${f}`, 'utf8')), f);
    const mixtral = countParameters(load('mixtral-8x7b.json'));
    expect(mixtral.total / 1e9).toBeCloseTo(46.7, 1);
    expect(mixtral.activePerToken / 1e9).toBeCloseTo(12.9, 1);
    expect(countParameters(load('deepseek-v3.json')).total / 1e9).toBeCloseTo(671, -1);
    // The sum of DeepSeek-V2-Lite's checkpoint tensors (MLA without q_lora_rank, kv_a_layernorm included).
    expect(countParameters(load('deepseek-v2-lite.json')).total).toBe(15_706_484_224);
  });
});
