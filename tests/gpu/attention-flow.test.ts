// The attention probe on a whole model (the Mixtral fixture, 2 layers, 4 heads over 2 kv heads): a decode step's
// recorded weights, per layer and head, against the float64 reference decoder's attention of the same token; and
// the probe changes nothing the model computes (logits bit-identical with it attached or not).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { planTensorsF32 } from '../../src/loading/plan-f32';
import { nodeFolder } from '../../src/io/node-source';
import { openModel } from '../../src/io/model';
import { decoderRef } from '../../src/reference/decoder';
import { expectClose } from '../support/gpu';
import { sessionOpener } from '../support/sessions';

const FIXTURE = join(__dirname, '..', 'fixtures', 'mixtral');
const ids = (JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as { input_ids: number[] }).input_ids;
const SLOW = 400_000;
const open = sessionOpener(FIXTURE, { contextLength: 64, maxTokensPerStep: 16 });

describe('attention probe on a whole model', () => {
  it('a decode step records the float64 reference attention of its token, every layer and head, within 1e-5', async () => {
    const s = await open();
    const c = s.config;
    const T = ids.length;
    await s.feed(ids.slice(0, T - 1));
    const probe = s.openAttentionProbe();
    await s.feed(ids.slice(T - 1)); // the decode step: one token at position T − 1
    const flow = await probe.read(T - 1);
    probe.close();
    expect([flow.layers, flow.heads, flow.weights.length]).toEqual([c.numLayers, c.numHeads, c.numLayers * c.numHeads * T]);

    const ref: Float64Array[] = [];
    decoderRef(c, await planTensorsF32(await openModel(await nodeFolder(FIXTURE))), ids, { onAttention: (l, w) => (ref[l] = w) });
    for (let l = 0; l < c.numLayers; l++) {
      const got = new Float32Array(c.numHeads * (T + 1));
      for (let h = 0; h < c.numHeads; h++) {
        got[h * (T + 1)] = flow.sink[l * c.numHeads + h];
        got.set(flow.weights.subarray((l * c.numHeads + h) * T, (l * c.numHeads + h + 1) * T), h * (T + 1) + 1);
      }
      expectClose(got, ref[l], { atol: 1e-5, rtol: 0 }, `layer ${l} attention`);
    }
  }, SLOW);

  it('logits are bit-identical with the probe attached and detached', async () => {
    const s = await open();
    const plain = await s.feedWithLogits(ids.slice(0, 9));
    await s.reset();
    const probe = s.openAttentionProbe();
    const probed = await s.feedWithLogits(ids.slice(0, 9));
    probe.close();
    await s.reset();
    const after = await s.feedWithLogits(ids.slice(0, 9));
    expect(Array.from(probed)).toEqual(Array.from(plain));
    expect(Array.from(after)).toEqual(Array.from(plain));
  }, SLOW);
});
