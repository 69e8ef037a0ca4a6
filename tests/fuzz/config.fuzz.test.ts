// Fuzzing config.json per family: every field of a valid config replaced (with values of every JSON type, huge,
// negative, fractional), deleted, or the file damaged as text; then the memory check that runs before any upload.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { normalizeConfig } from '../../src/io/config';
import { checkMemory } from '../../src/io/memory';
import { parseJson } from '../../src/io/source';
import type { ModelFamily } from '../../src/model/config';
import { RUNNABLE_FAMILIES, tinyConfig } from '../support/io-models';
import { byteMutation, fuzzParser, objectMutation } from './harness';

const FILE = 'config.json';
const v3 = JSON.parse(readFileSync('tests/fixtures/deepseek_v3/config.json', 'utf8')) as Record<string, unknown>;
const BASES: Record<ModelFamily, Record<string, unknown>> = {
  ...Object.fromEntries(RUNNABLE_FAMILIES.map((f) => [f, tinyConfig(f)])) as Record<Exclude<ModelFamily, 'deepseek_v2' | 'deepseek_v3'>, Record<string, unknown>>,
  deepseek_v3: v3,
  deepseek_v2: { ...v3, model_type: 'deepseek_v2', topk_method: 'group_limited_greedy', scoring_func: 'softmax' },
};
/** Fields some family reads that its base config leaves out. */
const OPTIONAL = [
  'head_dim', 'rope_theta', 'rope_scaling', 'rope_parameters', 'sliding_window', 'use_sliding_window', 'layer_types',
  'decoder_sparse_step', 'mlp_only_layers', 'quantization_config', 'attention_bias', 'qkv_bias', 'clip_qkv',
  'topk_method', 'moe_layer_freq', 'first_k_dense_replace', 'dtype', 'torch_dtype', 'num_local_experts', 'num_experts',
];
const LIMITS = { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 31, budgetBytes: 4 * 2 ** 30 };

/** normalizeConfig, then what the loader does with the result before it allocates anything. */
function openConfig(text: string): void {
  const config = normalizeConfig(parseJson(FILE, text), FILE);
  checkMemory(config, LIMITS, { contextLength: Math.min(1024, config.maxPositions) }, 'fuzzed');
}

describe('fuzz: config.json', () => {
  for (const family of Object.keys(BASES) as ModelFamily[]) {
    it(`${family}: accepted, or an error naming config.json and the field`, async () => {
      const base = BASES[family];
      const text = fc.oneof(
        { weight: 6, arbitrary: objectMutation(base, OPTIONAL).map((o) => JSON.stringify(o)) },
        { weight: 1, arbitrary: byteMutation(new TextEncoder().encode(JSON.stringify(base))).map((b) => new TextDecoder().decode(b)) },
      );
      const outcome = await fuzzParser({ name: `${family} config.json`, input: text, files: [FILE], seed: 0xc0f + family.length, parse: openConfig });
      expect(outcome.accepted).toBeGreaterThan(1000);
      expect(outcome.rejected).toBeGreaterThan(1000);
    });
  }
});
