// The whole-model benchmark's arithmetic: sizes from the command line, and the floors it prints beside each figure.
import { describe, expect, it } from 'vitest';
import { parseBytes } from '../../src/cli/args';
import { decodeWeightBytes, forwardFlops, syntheticIds } from '../../src/cli/bench-model';
import { countParameters, type MoeConfig } from '../../src/model/config';
import { normalizeConfig } from '../../src/io/config';
import { readFileSync } from 'node:fs';

const demo = normalizeConfig(JSON.parse(readFileSync('public/models/moescope-demo/config.json', 'utf8')), 'config.json') as MoeConfig;

describe('bench-model', () => {
  it('parses sizes with decimal and binary units and names the flag otherwise', () => {
    expect(parseBytes('40GB', '--memory')).toBe(40e9);
    expect(parseBytes('1.5 GiB', '--memory')).toBe(1.5 * 2 ** 30);
    expect(parseBytes('512mib', '--memory')).toBe(512 * 2 ** 20);
    expect(parseBytes('2e9', '--memory')).toBe(2e9);
    expect(() => parseBytes('lots', '--memory')).toThrow(/--memory: "lots" is not a size/);
    expect(() => parseBytes('0GB', '--memory')).toThrow(/must be a positive size/);
  });

  it('reads every active weight once per decoded token: k experts per MoE layer, the lm head whole, one embedding row', () => {
    const c = demo;
    const H = c.hiddenSize;
    const p = countParameters(c);
    const perLayerAttention = p.attention / c.numLayers;
    const expert = 3 * H * c.moeIntermediateSize;
    const router = c.numExperts * H;
    const norms = (2 * c.numLayers + 1) * H;
    const lmHead = c.vocabSize * H; // tied or not, the head reads vocab × hidden
    const expected = c.numLayers * (perLayerAttention + c.router.topK * expert + router) + norms + lmHead + H;
    expect(decodeWeightBytes(c, 2)).toBe(expected * 2);
    expect(forwardFlops(c, 3)).toBe(2 * 3 * (expected - H));
  });

  it('uses the token ids tools/bench_model_torch.py uses', () => {
    expect(syntheticIds(4, 100000)).toEqual([13, 7932, 15851, 23770]);
    expect(syntheticIds(3, 50)).toEqual([13, 7932 % 50, 15851 % 50]);
  });
});
