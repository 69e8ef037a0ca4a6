import { describe, expect, it } from 'vitest';
import { normalizeConfig } from '../../src/io/config';
import { OutOfMemoryError } from '../../src/io/errors';
import {
  assertFitsInMemory, checkMemory, DEFAULT_BUDGET_BYTES, estimateMemory, formatBytes, limitsOf, memoryBudget, parseMemorySize, roundUpGB,
} from '../../src/io/memory';
import { openCheckpoint } from '../../src/io/safetensors';
import { memoryFolder } from '../../src/io/source';
import { buildLoadPlan, bufferSize } from '../../src/io/weights';
import { modelFiles, synthModel } from '../support/io-models';

const MIXTRAL_8X7B = normalizeConfig({
  model_type: 'mixtral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
  num_attention_heads: 32, num_key_value_heads: 8, num_local_experts: 8, num_experts_per_tok: 2, torch_dtype: 'bfloat16',
}, 'Mixtral-8x7B/config.json');

const DEEPSEEK_V3 = normalizeConfig({
  model_type: 'deepseek_v3', vocab_size: 129280, hidden_size: 7168, intermediate_size: 18432, moe_intermediate_size: 2048,
  num_hidden_layers: 61, num_attention_heads: 128, n_routed_experts: 256, num_experts_per_tok: 8, q_lora_rank: 1536,
  kv_lora_rank: 512, torch_dtype: 'bfloat16',
}, 'DeepSeek-V3/config.json');

// A laptop-class WebGPU adapter: 1 GiB buffers and bindings, 4 GiB for the whole model.
const LIMITS = { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 30, budgetBytes: 4 * 2 ** 30 };

describe('memory check', () => {
  it('Mixtral-8x7B: 93.4 GB of bf16 weights; too big in total, not per buffer (expert banks split by expert)', () => {
    const est = estimateMemory(MIXTRAL_8X7B, { contextLength: 4096 });
    expect(est.weights).toBe(46_702_792_704 * 2);
    expect(est.kvCache).toBe(32 * 4096 * 2 * 8 * 128 * 4); // layers × positions × (K and V) × kv heads × head_dim × f32
    expect(est.largestBuffers[0]).toEqual({ name: 'embed', bytes: 32000 * 4096 * 2 });
    expect(est.largestBuffers).toContainEqual({ name: 'layers.0.expertsGateUp (one expert)', bytes: 2 * 14336 * 4096 * 2 });
    const check = checkMemory(MIXTRAL_8X7B, LIMITS, { contextLength: 4096 }, 'Mixtral-8x7B');
    expect(check.fits).toBe(false);
    expect(check.problems).toHaveLength(1);
    expect(check.problems[0]).toMatch(/^Mixtral-8x7B needs 9\d\.\d GB of GPU memory \(weights 93\.4 GB, KV cache 1\.1 GB for 4096 tokens, activations ~[\d.]+ MB, routing record [\d.]+ MB\); the memory budget is ~4\.3 GB; try config-only mode$/);
    expect(check.message).toBe(check.problems[0]);
    expect(() => assertFitsInMemory(MIXTRAL_8X7B, LIMITS, { contextLength: 4096 }, 'Mixtral-8x7B')).toThrow(OutOfMemoryError);
  });

  it('DeepSeek-V3 in config-only mode: 1.3 TB, MLA latent KV cache', () => {
    const est = estimateMemory(DEEPSEEK_V3, { contextLength: 1000 });
    expect(est.weights / 1e12).toBeCloseTo(1.342, 2);
    expect(est.kvCache).toBe(61 * 1000 * (512 + 64) * 4);
    expect(checkMemory(DEEPSEEK_V3, LIMITS, { contextLength: 1000 }, 'DeepSeek-V3').message).toMatch(/^DeepSeek-V3 needs 1342\.\d GB/);
  });

  it('a tiny model fits; with its plan, weights are the exact padded buffer sizes', async () => {
    const model = synthModel('qwen3_moe', { dtype: 'f16', overrides: { hidden_size: 9, vocab_size: 31 } });
    const ckpt = await openCheckpoint(memoryFolder(modelFiles(model)));
    const config = normalizeConfig(model.config, 'config.json');
    const plan = buildLoadPlan(config, ckpt);
    const est = assertFitsInMemory(config, LIMITS, { contextLength: 64, ringCapacity: 32 }, 'tiny', plan);
    expect(est.weights).toBe(plan.entries.reduce((s, e) => s + bufferSize(e), 0));
    expect(est.weights).toBeGreaterThan(plan.totalBytes); // odd-length f16 tensors are padded
    // Routing record, each buffer rounded up to 16 bytes: 6 [L, E] statistics and the ablation mask (60 → 64 bytes
    // each), zLossSum [L] (12 → 16), ring [R, L, 8] ×3, ringProbs [R, L, E], ringLse [R, L, 2] (logsumexp and flags).
    // tests/gpu/routing-memory.test.ts checks the same figure against the buffers the engine makes.
    const L = 3, E = 5, R = 32;
    expect(est.routing).toBe(7 * 64 + 16 + 3 * R * L * 8 * 4 + R * L * E * 4 + R * L * 2 * 4);
    expect(est.total).toBe(est.weights + est.kvCache + est.activations + est.routing);
  });

  it('per-buffer limits: the smaller of maxBufferSize and maxStorageBufferBindingSize, named', () => {
    const c = normalizeConfig({
      model_type: 'olmoe', vocab_size: 50304, hidden_size: 2048, intermediate_size: 1024, num_hidden_layers: 1,
      num_attention_heads: 16, num_experts: 64, num_experts_per_tok: 8, torch_dtype: 'float32',
    }, 'config.json');
    const roomy = { maxBufferSize: 2 ** 28, maxStorageBufferBindingSize: 2 ** 30, budgetBytes: 2 ** 40 };
    const check = checkMemory(c, roomy, { contextLength: 16 }, 'olmoe-1layer');
    // embed and lmHead 412 MB are over 268 MB; expert banks (1.07 GB, 537 MB) split into buffers of whole experts.
    expect(check.problems).toEqual([
      "olmoe-1layer: embed needs one 412.1 MB buffer; this adapter's maxBufferSize is 268.4 MB; try config-only mode",
      "olmoe-1layer: lmHead needs one 412.1 MB buffer; this adapter's maxBufferSize is 268.4 MB; try config-only mode",
    ]);
    expect(checkMemory(c, { ...roomy, maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 31 }, { contextLength: 16 }, 'x').fits).toBe(true);
  });

  it("the budget: the person's setting, else 90% of the largest device-local heap, else the default", () => {
    const heaps = [{ size: 64e9, deviceLocal: false }, { size: 141e9, deviceLocal: true }, { size: 1e8, deviceLocal: true }];
    expect(memoryBudget(heaps)).toEqual({ bytes: 126.9e9, origin: "90% of the adapter's 141.0 GB memory heap" });
    expect(memoryBudget([{ size: 8e9, deviceLocal: false }]).bytes).toBe(7.2e9); // unified memory: no heap marked local
    expect(memoryBudget([])).toEqual({ bytes: DEFAULT_BUDGET_BYTES, origin: 'a default: the adapter reports no memory size' });
    expect(memoryBudget(heaps, { bytes: 40e9, origin: 'set with --memory' })).toEqual({ bytes: 40e9, origin: 'set with --memory' });
  });

  it('the refusal names the budget, where it came from and how to raise it', () => {
    const limits = limitsOf(LIMITS, memoryBudget([]), (n) => `run with --memory ${roundUpGB(n)} or more`);
    const message = checkMemory(MIXTRAL_8X7B, limits, { contextLength: 4096 }, 'Mixtral-8x7B').message!;
    expect(message).toMatch(
      /; the memory budget is ~4\.3 GB \(a default: the adapter reports no memory size\); run with --memory 95GB or more, or try config-only mode$/,
    );
    const needed = estimateMemory(MIXTRAL_8X7B, { contextLength: 4096 }).total;
    expect(needed).toBeGreaterThan(94e9);
    expect(needed).toBeLessThanOrEqual(95e9);
    const raised = limitsOf(LIMITS, { bytes: parseMemorySize(roundUpGB(needed), '--memory'), origin: 'set with --memory' });
    expect(checkMemory(MIXTRAL_8X7B, { ...raised, maxStorageBufferBindingSize: 2 ** 31 }, { contextLength: 4096 }, 'x').fits).toBe(true);
  });

  it('memory sizes: decimal units as formatBytes writes them, binary with iB; anything else names the setting', () => {
    expect(['40GB', '40 gb', '1.5TB', '512MiB', '2GiB', '4e9', '123', '7kB'].map((t) => parseMemorySize(t, 'Memory')))
      .toEqual([40e9, 40e9, 1.5e12, 512 * 2 ** 20, 2 * 2 ** 30, 4e9, 123, 7000]);
    for (const bad of ['', 'GB', '-4GB', '4 XB', '4.GB', 'lots']) {
      expect(() => parseMemorySize(bad, 'Memory'), bad).toThrow(`Memory: "${bad}" is not a size (examples: 40GB, 512MiB, 2e9)`);
    }
    expect(() => parseMemorySize('0GB', 'Memory')).toThrow('Memory: "0GB" must be a positive size');
    expect([roundUpGB(61.02e9), roundUpGB(5.31e9), roundUpGB(10e9)]).toEqual(['62GB', '5.4GB', '10GB']);
  });

  it('limits from an adapter, and byte formatting', () => {
    expect(limitsOf({ maxBufferSize: 1, maxStorageBufferBindingSize: 2 }, { bytes: 3, origin: 'set' })).toMatchObject({
      maxBufferSize: 1, maxStorageBufferBindingSize: 2, budgetBytes: 3, budgetOrigin: 'set',
    });
    expect(limitsOf({ maxBufferSize: 1, maxStorageBufferBindingSize: 2 }).budgetBytes).toBe(4 * 2 ** 30);
    expect([formatBytes(93.4e9), formatBytes(512e6), formatBytes(12_345), formatBytes(7)]).toEqual(['93.4 GB', '512.0 MB', '12.3 kB', '7 bytes']);
  });
});
