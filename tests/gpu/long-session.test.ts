// Long sessions: decode steps through a sliding context, with the panels' periodic snapshots, must keep the number of
// live GPU buffers constant and the JS heap bounded. By default a one-layer model of the Mixtral family for
// LONG_RUN_STEPS (default 200) steps; LONG_RUN_MODEL=DIR runs the same checks on a model folder. `npm run test:long`:
// the demo model for 20,000 steps over a 48-token context (832 slides), sampled every 1,000 steps: 56 minutes on
// SwiftShader on a shared two-core machine (docs/reliability.md has the figures).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/loading/load-model';
import { memoryFolder } from '../../src/io/source';
import { nodeFolder } from '../../src/io/node-source';
import { byteLevelTokenizerJson, modelFiles, synthModel } from '../support/io-models';
import { testGpu } from '../support/gpu';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

const STEPS = Number(process.env.LONG_RUN_STEPS ?? 200);
const MODEL = process.env.LONG_RUN_MODEL;
const CONTEXT = Number(process.env.LONG_RUN_CONTEXT ?? (MODEL ? 512 : 24));
const SAMPLE_EVERY = Number(process.env.LONG_RUN_SAMPLE ?? 50);

async function openModel() {
  if (MODEL) return nodeFolder(MODEL);
  const model = synthModel('mixtral', { overrides: { num_hidden_layers: 1, vocab_size: 300 } });
  return memoryFolder(modelFiles(model, { extra: { 'tokenizer.json': JSON.stringify(byteLevelTokenizerJson()) } }));
}

describe('long session', () => {
  it(`${STEPS} decode steps over a sliding context: constant live GPU buffers, bounded heap`, async () => {
    const gpu = await testGpu();
    const session = await loadModel(gpu, await openModel(), { contextLength: CONTEXT, maxTokensPerStep: 8 });
    const k = session.config.router.topK;
    const started = performance.now();
    const cpuStart = process.cpuUsage(); // this process's CPU time, SwiftShader's threads included: wall time alone misleads on a shared machine
    try {
      await session.feed(session.tokenizer.encode('hello the'));
      const sampling = { temperature: 0.9, topP: 0.95, seed: 3 };
      let slides = 0;
      const live: number[] = [];
      const created: number[] = [];
      const heap: number[] = [];
      for (let step = 0; step < STEPS; step++) {
        if (session.position === CONTEXT) {
          await session.slide(CONTEXT / 2);
          slides++;
        }
        await session.generate(sampling);
        if (step % SAMPLE_EVERY === SAMPLE_EVERY - 1) {
          const snap = await session.snapshot();
          // The record covers exactly the tokens in the window: k assignments per token.
          const perLayer = snap.counts.reduce((a, b) => a + b, 0) / session.config.moeLayers.filter(Boolean).length;
          expect(perLayer).toBe(session.position * k);
          live.push(gpu.liveBuffers);
          created.push(gpu.bufferCounts.created);
          heap.push(heapAfterGc());
        }
      }
      expect(slides).toBeGreaterThanOrEqual(Math.floor(STEPS / (CONTEXT / 2)) - 1);
      expect(new Set(live).size, `live buffers at every ${SAMPLE_EVERY}th step: ${live.join(', ')}`).toBe(1);
      // Nothing is made per token: between two samples only the one snapshot's staging buffer.
      const made = created.slice(1).map((c, i) => c - created[i]);
      expect(made, `buffers made between samples: ${made.join(', ')}`).toEqual(made.map(() => 1));
      // Warm-up (JIT, first snapshots) is over by the second sample; after it the heap may wander, not grow with steps.
      const growth = Math.max(...heap.slice(1)) - heap[1];
      expect(growth, `heap after gc at every ${SAMPLE_EVERY}th step (bytes): ${heap.join(', ')}`).toBeLessThan(2 * 2 ** 20);
      expect(gpu.recentErrors).toEqual([]);
      console.log(
        `long session: ${STEPS} steps, ${slides} slides, ${((performance.now() - started) / STEPS).toFixed(1)} ms/step ` +
          `(CPU ${(cpuMs(process.cpuUsage(cpuStart)) / STEPS).toFixed(1)} ms/step), ` +
          `${live[0]} live buffers throughout, heap after gc ${(heap[1] / 2 ** 20).toFixed(1)} → ${(heap[heap.length - 1] / 2 ** 20).toFixed(1)} MiB`,
      );
    } finally {
      session.destroy();
    }
  }, Math.max(600_000, STEPS * (MODEL ? 20_000 : 1_000)));
});
