// What recording a decode step costs, seen from outside the engine (tests/support/recording.ts): dispatches per
// layer for every family, queue writes and GPU objects per step, and the CPU time of recording a 24-layer step
// (printed, not asserted: SwiftShader's API overhead on a shared CPU is not a GPU driver's).
import { describe, expect, it } from 'vitest';
import { testGpu } from '../support/gpu';
import { countStep, tinySession } from '../support/recording';
import { recordingMillis } from '../../src/bench/recording';
import { median } from '../../src/bench/timing';
import { relativeError } from '../support/sessions';
import type { RunnableFamily } from '../support/io-models';

/** Dispatches one decode layer records without fusions (DecoderOptions.fuse false: every op its own kernel). */
const UNFUSED_DISPATCHES: Record<RunnableFamily, number> = {
  granitemoe: 17,
  mixtral: 17,
  olmoe: 19,
  qwen3_moe: 19,
  qwen2_moe: 22,
  gpt_oss: 21,
};

/**
 * Dispatches one decode layer (T = 1) records, per family of the tiny synthetic models (MoE layers): with the MoE
 * block's down projection, combine and residual add in one kernel (moe_down_combine), one fewer than the router,
 * plan, scatter, gate/up, down and combine of the MoE block before.
 */
const DECODE_DISPATCHES: Record<RunnableFamily, number> = {
  granitemoe: 9,
  mixtral: 9,
  olmoe: 9,
  qwen3_moe: 9,
  qwen2_moe: 11,
  gpt_oss: 10,
};

describe('decode step recording', () => {
  it('granitemoe, 24 layers: one uniform write per step, no redundant pass call, no GPU object, CPU time', async () => {
    const gpu = await testGpu();
    const session = await tinySession(gpu, 'granitemoe', 24);
    try {
      await session.feed([5, 6, 7]);
      countStep(gpu, session.decoder, 1, 3); // the first decode step may bind T = 1's groups
      const c = countStep(gpu, session.decoder, 1, 4);
      console.log(`decode step, 24 layers: ${JSON.stringify({ ...c, labels: c.labels.length })}`);
      expect(c.perLayer).toEqual(new Array(24).fill(DECODE_DISPATCHES.granitemoe));
      expect(c.created).toBe(0);
      // Every uniform of the step, attention's included, in the decoder's arena: one write per 64 KiB chunk of it
      // (256 slots; 24 layers take two).
      expect(c.writes).toBeLessThanOrEqual(2);
      expect(c.redundant).toBe(0); // no setPipeline / setBindGroup of what the pass already has
      const ms = await recordingMillis(gpu, session.decoder, 5, { steps: 30, warmUp: 2, span: 16 });
      console.log(`recording a 24-layer decode step: ${Math.min(...ms).toFixed(3)} ms CPU (min; median ${median(ms).toFixed(3)})`);
    } finally {
      session.destroy();
    }
  });

  for (const family of ['mixtral', 'olmoe', 'qwen3_moe', 'qwen2_moe', 'gpt_oss'] as const) {
    it(`${family}: dispatches per MoE layer at T = 1`, async () => {
      const gpu = await testGpu();
      // Every layer MoE (the tiny qwen configs have dense layers); qwen3_moe's tiny head_dim 6 is below attention's vec4 rows.
      const overrides = { decoder_sparse_step: 1, mlp_only_layers: [], ...(family === 'qwen3_moe' ? { head_dim: 8 } : {}) };
      const session = await tinySession(gpu, family, 4, { overrides });
      try {
        await session.feed([5, 6, 7]);
        countStep(gpu, session.decoder, 1, 3);
        const c = countStep(gpu, session.decoder, 1, 4);
        expect(c.perLayer, JSON.stringify(c)).toEqual(new Array(4).fill(DECODE_DISPATCHES[family]));
        expect(c.created).toBe(0);
      } finally {
        session.destroy();
      }
    });
  }

  for (const family of ['granitemoe', 'mixtral', 'olmoe', 'qwen3_moe', 'qwen2_moe', 'gpt_oss'] as const) {
    it(`${family}: fused and unfused kernels give the same logits (a 20-token prefill, one-token and 5-token steps)`, async () => {
      const gpu = await testGpu();
      const overrides = { decoder_sparse_step: 1, mlp_only_layers: [], ...(family === 'qwen3_moe' ? { head_dim: 8 } : {}) };
      const fused = await tinySession(gpu, family, 3, { overrides, seed: 9 }, { maxTokensPerStep: 32 });
      const plain = await tinySession(gpu, family, 3, { overrides, seed: 9 }, { maxTokensPerStep: 32, fuse: false });
      try {
        const prompt = Array.from({ length: 20 }, (_, i) => (i * 37 + 11) % 263);
        for (const step of [prompt, [5], [200], [1, 2, 3, 4, 5], [9]]) {
          const [a, b] = [await fused.feedWithLogits(step), await plain.feedWithLogits(step)];
          expect(relativeError(a, b), `${family}, a step of ${step.length}`).toBeLessThan(1e-5);
        }
        const c = countStep(gpu, plain.decoder, 1, fused.position);
        expect(c.perLayer).toEqual(new Array(3).fill(UNFUSED_DISPATCHES[family]));
      } finally {
        fused.destroy();
        plain.destroy();
      }
    });
  }
});
