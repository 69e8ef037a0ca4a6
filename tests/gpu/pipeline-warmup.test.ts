// Pipelines compiled before the first step: loadModel plans every compute pipeline the decoder and session ask for
// (Gpu.planner(), an inert device), compiles them in parallel with createComputePipelineAsync while the weights
// upload, and steps (decode and a batched prefill) without one synchronous createComputePipeline. A pipeline that
// fails to compile fails the load with the kernel's name, frees what the load made, and the loaded model keeps working.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Gpu, GpuPipelineError } from '../../src/engine/gpu';
import { nodeShader } from '../../src/engine/node/device-node';
import { nodeFolder } from '../../src/io/node-source';
import { loadModel } from '../../src/loading/load-model';
import { testGpu } from '../support/gpu';

const FIXTURES = join(__dirname, '..', 'fixtures');
// 32 tokens a step: the tiled matmul pipelines (above 16 rows) are planned too.
const OPTIONS = { contextLength: 48, maxTokensPerStep: 32 };
const PROMPT = Array.from({ length: 20 }, (_, i) => (i * 37 + 1) % 300); // ids every fixture's vocabulary has

/** Counts the device's synchronous and asynchronous compute-pipeline creations from now on. */
function countPipelines(gpu: Gpu): { sync: number; async: number } {
  const counts = { sync: 0, async: 0 };
  const device = gpu.device;
  const sync = device.createComputePipeline.bind(device);
  const async = device.createComputePipelineAsync.bind(device);
  device.createComputePipeline = (d) => (counts.sync++, sync(d));
  device.createComputePipelineAsync = (d) => (counts.async++, async(d));
  return counts;
}

describe('pipelines compiled before the first step', () => {
  it('a loaded model prefills, decodes and samples without compiling a pipeline synchronously', async () => {
    const base = await testGpu();
    const gpu = new Gpu(base.device, base.adapter, nodeShader); // an empty pipeline cache
    const counts = countPipelines(gpu);
    const said: string[] = [];
    const session = await loadModel(gpu, await nodeFolder(join(FIXTURES, 'qwen3_moe')), {
      ...OPTIONS,
      onProgress: (done, total) => said.push(`uploaded ${done}/${total}`),
      onCompiling: () => said.push('compiling'),
    });
    // The person is told about the kernels once the upload is done.
    expect(said.at(-1)).toBe('compiling');
    expect(said.at(-2)).toMatch(/^uploaded (\d+)\/\1$/);
    const compiled = counts.async;
    expect(compiled).toBeGreaterThan(10);
    expect(compiled).toBe(gpu.pipelineRequests.length);
    await session.feed(PROMPT); // one 20-token step: the tiled matmul
    await session.generate(); // one token: the GEMV path, sampling
    await session.back(1);
    await session.generate();
    expect(counts).toEqual({ sync: 0, async: compiled });
    expect(gpu.recentErrors).toEqual([]);
    session.destroy();
  }, 300_000);

  it('a pipeline that fails to compile fails the load naming its kernel; nothing is left behind', async () => {
    const base = await testGpu();
    const loaded = await loadModel(base, await nodeFolder(join(FIXTURES, 'mixtral')), OPTIONS);
    await loaded.feed(PROMPT.slice(0, 8));
    const logits = Array.from(await loaded.lastLogits());
    // Compiles cleanly as a module; the pipeline then sets an override the shader no longer has.
    const broken = (name: string) => (name === 'rmsnorm' ? nodeShader(name).replace('override WORKGROUP', 'const WORKGROUP') : nodeShader(name));
    const gpu = new Gpu(base.device, base.adapter, broken);
    const failure = await loadModel(gpu, await nodeFolder(join(FIXTURES, 'mixtral')), OPTIONS).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(GpuPipelineError);
    expect((failure as GpuPipelineError).kernel).toBe('rmsnorm.main');
    expect(String(failure)).toMatch(/compute pipeline rmsnorm\.main \(shaders\/rmsnorm\.wgsl\) failed: /);
    expect(gpu.liveBuffers).toBe(0);
    expect(Array.from(await loaded.lastLogits())).toEqual(logits);
    await loaded.generate();
    expect(base.recentErrors).toEqual([]);
    loaded.destroy();
  }, 300_000);
});
