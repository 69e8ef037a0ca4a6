// Node entry to the GPU: Dawn through the npm `webgpu` package; WGSL read from shaders/ on disk.
// On a machine without a GPU, Dawn runs on SwiftShader (Debian chromium's CPU Vulkan driver).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gpu, deviceDescriptor, summarizeAdapter } from '../gpu';

/** shaders/ of the project: $MOESCOPE_SHADERS, else the nearest `shaders` folder above this module (works bundled too). */
export const SHADER_DIR = findShaderDir();

function findShaderDir(): string {
  if (process.env.MOESCOPE_SHADERS) return process.env.MOESCOPE_SHADERS;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'shaders', 'lib', 'weights.wgsl'))) return join(dir, 'shaders');
    const parent = dirname(dir);
    if (parent === dir) return join(process.cwd(), 'shaders');
    dir = parent;
  }
}
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

const shaderCache = new Map<string, string>();
export function nodeShader(name: string): string {
  let code = shaderCache.get(name);
  if (code === undefined) {
    const path = join(SHADER_DIR, `${name}.wgsl`);
    if (!existsSync(path)) throw new Error(`no shader named "${name}" (${path})`);
    code = readFileSync(path, 'utf8');
    shaderCache.set(name, code);
  }
  return code;
}

export class NoAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoAdapterError';
  }
}

let dawn: { create: (flags: string[]) => GPU; globals: Record<string, unknown> } | null = null;
/**
 * Dawn's instance lives only as long as its GPU object is referenced: if it is collected, pending work never
 * completes. Keep it here; releaseNodeGpu() drops it so the process can exit.
 */
let instance: GPU | null = null;

/** Destroys the device and lets Node exit (Dawn keeps the event loop alive while its instance is referenced). */
export function releaseNodeGpu(gpu?: Gpu): void {
  gpu?.destroy();
  instance = null;
}

/** The Dawn instance flags requestNodeGpu uses (also for other Dawn instances in the process, e.g. benchmarks). */
export function dawnFlags(): string[] {
  // SwiftShader's own zero-initialisation of workgroup memory (VK_KHR_zero_initialize_workgroup_memory) makes
  // pipeline creation take seconds per 32 KiB of shared memory; Dawn's shader-side zeroing (same result) takes ms.
  const onSwiftShader = process.env.VK_ICD_FILENAMES === SWIFTSHADER_ICD;
  return [
    'enable-dawn-features=allow_unsafe_apis',
    // Full-resolution timestamps (Dawn rounds them to ~65 µs otherwise).
    'disable-dawn-features=timestamp_quantization' +
      (onSwiftShader ? ',use_vulkan_zero_initialize_workgroup_memory_extension' : ''),
  ];
}

/**
 * A Gpu on Dawn. Without VK_ICD_FILENAMES / VK_DRIVER_FILES set, prefers SwiftShader when present (CI, dev boxes);
 * set one of them to choose a real driver.
 */
export async function requestNodeGpu(label = 'moescope'): Promise<Gpu> {
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  if (!dawn) {
    dawn = (await import('webgpu')) as unknown as typeof dawn;
    // GPUBufferUsage, GPUMapMode, … as globals, as in a browser.
    Object.assign(globalThis, dawn!.globals);
  }
  instance ??= dawn!.create(dawnFlags());
  const adapter = await instance.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new NoAdapterError(
      'Dawn found no WebGPU adapter. Install a Vulkan driver, or Debian\'s chromium + libvulkan1 for SwiftShader ' +
        `(${SWIFTSHADER_ICD}), or set VK_ICD_FILENAMES.`,
    );
  }
  const device = await adapter.requestDevice(deviceDescriptor(adapter, label));
  return new Gpu(device, summarizeAdapter(adapter), nodeShader);
}
