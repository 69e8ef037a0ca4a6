// The one place that reaches into three.js internals.
//
// three.js (r187) keeps the GPUBuffer behind a StorageBufferAttribute in its backend's per-object data:
// `renderer.backend.get(attribute).buffer`. It is created the first time the attribute is used by a draw or compute
// (or when the renderer compiles a scene that uses it). The dashboard writes instance values into that buffer from its
// own compute pass, so it needs the handle. If a three.js update moves it, only this file changes.
import type { StorageBufferAttribute, WebGPURenderer } from 'three/webgpu';

interface BackendWithData {
  get(object: object): { buffer?: GPUBuffer } | undefined;
}

/** The GPUBuffer three.js created for `attribute`; throws if the renderer has not created it yet. */
export function gpuBufferOf(renderer: WebGPURenderer, attribute: StorageBufferAttribute): GPUBuffer {
  const backend = renderer.backend as unknown as BackendWithData;
  const buffer = backend.get(attribute)?.buffer;
  if (!buffer) {
    throw new Error(
      `three.js has no GPU buffer for attribute "${attribute.name || 'unnamed'}" yet: compile or render a scene ` +
        'that uses it first',
    );
  }
  return buffer;
}
