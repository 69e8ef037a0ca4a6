// Browser entry to the GPU: navigator.gpu, WGSL sources bundled by Vite as raw text.
import { Gpu, deviceDescriptor, summarizeAdapter } from './gpu';

const wgslFiles = import.meta.glob('../../shaders/**/*.wgsl', { query: '?raw', import: 'default', eager: true }) as Record<
  string,
  string
>;

/** shaders/<name>.wgsl sources keyed by name. */
export const browserShaders: Record<string, string> = Object.fromEntries(
  Object.entries(wgslFiles).map(([path, code]) => [path.replace(/^.*\/shaders\/(.+)\.wgsl$/, '$1'), code]),
);

export class WebGpuUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebGpuUnavailableError';
  }
}

/** A Gpu on the browser's WebGPU adapter; throws WebGpuUnavailableError with a reason a person can act on. */
export async function requestBrowserGpu(label = 'moescope'): Promise<Gpu> {
  if (typeof navigator === 'undefined' || !('gpu' in navigator)) {
    throw new WebGpuUnavailableError(
      'This browser does not expose WebGPU (navigator.gpu is missing). Use a current Chrome, Edge or another ' +
        'WebGPU browser, served over https or http://localhost.',
    );
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new WebGpuUnavailableError(
      'WebGPU is present but no GPU adapter was granted (it may be blocked by the browser or driver).',
    );
  }
  const device = await adapter.requestDevice(deviceDescriptor(adapter, label));
  return new Gpu(device, summarizeAdapter(adapter), (name) => {
    const code = browserShaders[name];
    if (code === undefined) throw new Error(`no shader named "${name}" in shaders/`);
    return code;
  });
}
