// DeepSeek-V3's MoE block alone against transformers (the whole model is in golden.test.ts). The fixture records
// each MoE block's input and output for the prompt; the block runs here on exactly that input.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openModel } from '../../src/io/model';
import { nodeFolder } from '../../src/io/node-source';
import { uploadWeights } from '../../src/loading/upload-weights';
import { RoutingStats } from '../../src/engine/routing/stats';
import { MoeScratch } from '../../src/engine/routing/scratch';
import { MoeLayer, moeScratchShape } from '../../src/engine/routing/moe-layer';
import { K_MAX } from '../../src/engine/routing-buffers';
import { readF32, storageBuffer, uploadBuffer } from '../../src/engine/kernels/common';
import { expectClose, testGpu } from '../support/gpu';

const DIR = join(__dirname, '..', 'fixtures', 'deepseek_v3');

interface Golden {
  top_k: number;
  prefill: {
    routing: { layer: number; ids: number[][]; weights: number[][]; gap: (number | null)[]; min_gap: (number | null)[]; group_gap?: (number | null)[] }[];
    moe_io: { layer: number; input: number[][]; output: number[][] }[];
  };
}

describe('DeepSeek-V3 MoE block vs transformers', () => {
  it('sigmoid scores, correction bias for selection, group-limited top-k, scaling, shared expert', async () => {
    const gpu = await testGpu();
    const golden = JSON.parse(readFileSync(join(DIR, 'golden.json'), 'utf8')) as Golden;
    const opened = await openModel(await nodeFolder(DIR), { ffnOnly: true });
    const c = opened.config;
    expect(c.router.scoring).toBe('sigmoid');
    const weights = await uploadWeights(gpu, opened.checkpoint, opened.plan);
    const T = golden.prefill.moe_io[0].input.length;
    const stats = new RoutingStats(gpu, c, { ringCapacity: T });
    const scratch = new MoeScratch(gpu, moeScratchShape(c, { maxTokens: T }));
    const H = c.hiddenSize;
    for (const io of golden.prefill.moe_io) {
      const p = `layers.${io.layer}`;
      const w = (n: string) => weights.buffers.get(`${p}.${n}`)!;
      const layer = new MoeLayer(gpu, {
        layer: io.layer,
        config: c,
        stats,
        scratch,
        weights: {
          router: w('router'),
          correctionBias: w('routerCorrectionBias'),
          gateUp: weights.banks.get(`${p}.expertsGateUp`)!,
          down: weights.banks.get(`${p}.expertsDown`)!,
          shared: { gateUp: w('sharedGateUp'), down: w('sharedDown'), gate: null },
        },
      });
      const x = uploadBuffer(gpu, 'test.x', new Float32Array(io.input.flat()));
      const out = storageBuffer(gpu, 'test.out', T * H * 4);
      const encoder = gpu.device.createCommandEncoder();
      layer.encode(encoder, x, out, T, 0);
      gpu.device.queue.submit([encoder.finish()]);
      expectClose(await readF32(gpu, out, T * H), io.output.flat(), { atol: 1e-5, rtol: 1e-4 }, `layer ${io.layer} output`);

      const snap = await stats.snapshot(T);
      const routing = golden.prefill.routing.find((r) => r.layer === io.layer)!;
      const k = golden.top_k;
      for (let t = 0; t < T; t++) {
        const base = (t * c.numLayers + io.layer) * K_MAX;
        const got = Array.from(snap.chosen.subarray(base, base + k)).sort((a, b) => a - b);
        const tie = (routing.gap[t] ?? Infinity) < 1e-6 || (routing.group_gap?.[t] ?? Infinity) < 1e-6;
        if (!tie) expect(got, `token ${t} layer ${io.layer}`).toEqual([...routing.ids[t]].sort((a, b) => a - b));
        for (let s = 0; s < k && !tie; s++) {
          const j = routing.ids[t].indexOf(snap.chosen[base + s]);
          expect(snap.weights[base + s]).toBeCloseTo(routing.weights[t][j], 5);
        }
      }
    }
    expect(gpu.recentErrors).toEqual([]);
  });
});
