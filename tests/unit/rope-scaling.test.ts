import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deepseekSoftmaxMultiplier, ropeTables } from '../../src/model/rope';
import { parseRopeScaling } from '../../src/io/rope-config';
import { normalizeConfig } from '../../src/io/config';
import { ropeInvFreqRef } from '../../src/reference/rope-scaling';

// inv_freq tables and attention factors computed by transformers' rope init functions (tools/make_rope_fixture.py).
interface Case {
  name: string;
  head_dim: number;
  max_position_embeddings: number;
  rope_parameters: Record<string, unknown> & { rope_theta: number };
  seq_len: number | null;
  inv_freq: number[];
  attention_factor: number;
  deepseek_softmax_scale_multiplier: number;
}
const FIXTURE = JSON.parse(readFileSync(new URL('../fixtures/rope/rope_scaling.json', import.meta.url), 'utf8')) as { cases: Case[] };

function scalingOf(c: Case) {
  const parsed = parseRopeScaling({ rope_parameters: c.rope_parameters }, 'config.json', c.max_position_embeddings);
  if (!('scaling' in parsed)) throw new Error(parsed.unsupported);
  return parsed.scaling;
}

/** Distance in f32 ulps (both values are f32). */
function ulps(a: number, b: number): number {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat32(0, a);
  buf.setFloat32(4, b);
  return Math.abs(buf.getInt32(0) - buf.getInt32(4));
}

describe('RoPE scaling tables against transformers', () => {
  it('covers every implemented type', () => {
    expect(new Set(FIXTURE.cases.map((c) => scalingOf(c).type))).toEqual(new Set(['default', 'linear', 'dynamic', 'yarn', 'llama3']));
  });

  for (const c of FIXTURE.cases) {
    it(c.name, () => {
      const scaling = scalingOf(c);
      const t = ropeTables(scaling, c.head_dim, c.rope_parameters.rope_theta, c.seq_len ?? 0);
      expect(t.invFreq.length).toBe(c.inv_freq.length);
      // transformers forms each entry with f32 tensor operations; torch's f32 pow may differ from the correctly
      // rounded one by an ulp (a few entries per table here).
      const off = Array.from(t.invFreq, (v, i) => ulps(v, c.inv_freq[i]));
      expect(Math.max(...off), `${c.name}: ulps per entry ${off.join(',')}`).toBeLessThanOrEqual(1);
      expect(off.filter((u) => u > 0).length, c.name).toBeLessThanOrEqual(Math.ceil(c.inv_freq.length / 8));
      expect(t.attentionFactor).toBeCloseTo(c.attention_factor, 14);
      expect(deepseekSoftmaxMultiplier(scaling)).toBeCloseTo(c.deepseek_softmax_scale_multiplier, 14);
      // The float64 formulas: transformers' f32 tables are within f32 rounding of them.
      const ref = ropeInvFreqRef(scaling, c.head_dim, c.rope_parameters.rope_theta, c.seq_len ?? 0);
      c.inv_freq.forEach((v, i) => expect(Math.abs(v - ref[i]), `${c.name}[${i}]`).toBeLessThanOrEqual(4e-6 * ref[i]));
    });
  }
});

describe('RoPE scaling in config.json', () => {
  const base = { max_position_embeddings: 4096 };
  it('a v4 rope_scaling object wins over rope_parameters, spelled with `type`', () => {
    const r = parseRopeScaling({ ...base, rope_parameters: { rope_type: 'default' }, rope_scaling: { type: 'linear', factor: 2 } }, 'c.json', 4096);
    expect(r).toEqual({ scaling: { type: 'linear', factor: 2 } });
  });
  it('YaRN defaults: betas 32/1, truncation on, original length from the top level first, factor from the lengths', () => {
    const r = parseRopeScaling({ ...base, original_max_position_embeddings: 1024, rope_parameters: { rope_type: 'yarn', beta_fast: 0 } }, 'c.json', 4096);
    expect(r).toEqual({
      scaling: { type: 'yarn', factor: 4, originalMaxPositions: 1024, betaFast: 32, betaSlow: 1, attentionFactor: null, mscale: null, mscaleAllDim: null, truncate: true },
    });
  });
  it('types it lacks are drawn, not run; broken fields are errors naming the field', () => {
    expect(parseRopeScaling({ rope_scaling: { rope_type: 'longrope', factor: 2 } }, 'c.json', 4096)).toEqual({
      unsupported: 'RoPE scaling "longrope" is not implemented (default, linear, dynamic, yarn, llama3)',
    });
    expect(() => parseRopeScaling({ rope_scaling: { type: 'linear' } }, 'm/config.json', 4096)).toThrow('m/config.json: field "rope_scaling.factor": missing');
    expect(() => parseRopeScaling({ rope_parameters: { rope_type: 'dynamic', factor: -1 } }, 'c.json', 4096)).toThrow(
      'field "rope_parameters.factor": expected a positive number, found -1',
    );
    expect(() => parseRopeScaling({ rope_parameters: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1 } }, 'c.json', 4096)).toThrow(
      'rope_parameters.high_freq_factor',
    );
  });
  it('DeepSeek: YaRN runs, and mscale_all_dim scales the softmax', () => {
    const c = FIXTURE.cases.find((x) => x.name === 'yarn-deepseek-v2-lite')!;
    const config = normalizeConfig(
      {
        model_type: 'deepseek_v3', vocab_size: 64, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2,
        n_routed_experts: 4, num_experts_per_tok: 2, moe_intermediate_size: 8, first_k_dense_replace: 0, n_group: 2, topk_group: 1,
        qk_nope_head_dim: 8, qk_rope_head_dim: 8, v_head_dim: 8, kv_lora_rank: 16, max_position_embeddings: 163840,
        rope_scaling: { type: 'yarn', ...c.rope_parameters },
      },
      'config.json',
    );
    expect(config.ropeScaling?.type).toBe('yarn');
    expect(config.unsupported ?? '').not.toMatch(/RoPE/);
    expect(config.attentionScale).toBeCloseTo(c.deepseek_softmax_scale_multiplier / 4, 12);
  });
});
