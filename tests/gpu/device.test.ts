// The Gpu context: typed errors, device loss, shader includes, pipeline cache.
import { describe, expect, it } from 'vitest';
import { Gpu, GpuError, GpuDeviceLostError, resolveIncludes } from '../../src/engine/gpu';
import { requestNodeGpu, nodeShader } from '../../src/engine/node/device-node';
import { kernelLayout } from '../../src/engine/kernels/common';
import { testGpu } from '../support/gpu';

describe('Gpu', () => {
  it('runs on a real WebGPU adapter (SwiftShader without a GPU), with its full limits', async () => {
    const gpu = await testGpu();
    expect(gpu.device).toBeTruthy();
    expect(gpu.adapter.description.length + gpu.adapter.vendor.length).toBeGreaterThan(0);
    // The device asks for the adapter's limits, not WebGPU's defaults (128 MiB storage bindings).
    expect(gpu.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
  });

  it('checked() turns a validation error into a GpuError naming the object', async () => {
    const gpu = await testGpu();
    const err = await gpu
      .checked(() => gpu.device.createBuffer({ label: 'Test.badBuffer', size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE }))
      .catch((e) => e);
    expect(err).toBeInstanceOf(GpuError);
    expect(err.kind).toBe('validation');
    expect(err.message).toMatch(/Test\.badBuffer/);
  });

  it('uncaptured errors reach listeners as typed errors', async () => {
    const base = await testGpu();
    const gpu = new Gpu(base.device, base.adapter, nodeShader);
    const seen = new Promise<GpuError>((resolve) => gpu.onError(resolve));
    gpu.device.createBuffer({ label: 'Test.uncaptured', size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.MAP_WRITE });
    const err = await seen;
    expect(err).toBeInstanceOf(GpuError);
    expect(err.message).toMatch(/Test\.uncaptured/);
    base.recentErrors.length = 0; // the shared test device saw it too; it was deliberate
  });

  it('notices device loss and refuses new work with GpuDeviceLostError', async () => {
    const gpu = await requestNodeGpu('moescope-loss-test');
    const lost = new Promise<GpuDeviceLostError>((resolve) => gpu.onLost(resolve));
    gpu.destroy();
    const err = await lost;
    expect(err.reason).toBe('destroyed');
    expect(() => gpu.assertAlive()).toThrow(GpuDeviceLostError);
  });

  it('inlines // #include lines once each', () => {
    const files: Record<string, string> = {
      main: '// #include "lib/a"\n// #include "lib/b"\nfn main() {}',
      'lib/a': '// #include "lib/b"\nfn a() {}',
      'lib/b': 'fn b() {}',
    };
    const code = resolveIncludes('main', (n) => files[n]);
    expect(code.match(/fn b\(\)/g)).toHaveLength(1);
    expect(code.indexOf('fn b()')).toBeLessThan(code.indexOf('fn a()'));
  });

  it('creates each pipeline once', async () => {
    const gpu = await testGpu();
    const layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw']);
    const a = gpu.pipeline('rmsnorm', 'main', { WORKGROUP: 64 }, layout.pipelineLayout, layout.key);
    const b = gpu.pipeline('rmsnorm', 'main', { WORKGROUP: 64 }, layout.pipelineLayout, layout.key);
    const c = gpu.pipeline('rmsnorm', 'main', { WORKGROUP: 128 }, layout.pipelineLayout, layout.key);
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });
});
