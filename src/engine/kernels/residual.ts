// Residual add kernel (shaders/residual.wgsl): acc += scale · b in place, or out = a + scale · b.
import type { Gpu } from '../gpu';
import { UniformArena, Uniforms, type UniformLayout, bindGroup, kernelLayout, type KernelLayout } from './common';
import { gridStrideGroups, requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/residual.wgsl. */
export const RESIDUAL_PARAMS: UniformLayout = { fields: ['count', 'scale'], floats: ['scale'] };

export const RESIDUAL_CONSTANTS = { WORKGROUP: 256 };

export interface ResidualShape {
  /** Elements (tokens · hidden). */
  count: number;
  /** Granite-MoE residual_multiplier (default 1). */
  scale?: number;
}

export interface ResidualBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
  pipeline: GPUComputePipeline;
  label: string;
  buffers: GPUBuffer[];
  count: number;
}

export class ResidualKernel {
  private readonly inplaceLayout: KernelLayout;
  private readonly outLayout: KernelLayout;
  readonly inplacePipeline: GPUComputePipeline;
  readonly outPipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    private readonly arena: UniformArena | null = null,
  ) {
    this.inplaceLayout = kernelLayout(gpu, ['uniform', 'rw', 'read']);
    this.outLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw']);
    const c = RESIDUAL_CONSTANTS;
    this.inplacePipeline = gpu.pipeline('residual', 'add_inplace', c, this.inplaceLayout.pipelineLayout, this.inplaceLayout.key);
    this.outPipeline = gpu.pipeline('residual', 'add', c, this.outLayout.pipelineLayout, this.outLayout.key);
  }

  /** acc: [count] f32, updated to acc + scale · b; b: [count] f32 (a different buffer). */
  bindInPlace(label: string, acc: GPUBuffer, b: GPUBuffer): ResidualBinding {
    if (acc === b) throw new Error(`${label}: acc and b must be different buffers`);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, RESIDUAL_PARAMS, this.arena);
    const group = bindGroup(this.gpu, label, this.inplaceLayout, [uniforms, acc, b]);
    return { uniforms, bindGroup: group, pipeline: this.inplacePipeline, label, buffers: [acc, b], count: 0 };
  }

  /** out = a + scale · b; all [count] f32; out must differ from a and b (use bindInPlace for out = a). */
  bind(label: string, a: GPUBuffer, b: GPUBuffer, out: GPUBuffer): ResidualBinding {
    if (out === a || out === b) throw new Error(`${label}: out aliases an input; use bindInPlace`);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, RESIDUAL_PARAMS, this.arena);
    const group = bindGroup(this.gpu, label, this.outLayout, [uniforms, a, b, out]);
    return { uniforms, bindGroup: group, pipeline: this.outPipeline, label, buffers: [a, b, out], count: 0 };
  }

  /** Writes the shape uniform (queue write, no allocation). */
  setShape(r: ResidualBinding, s: ResidualShape): void {
    requireInt(r.label, 'count', s.count, 1);
    for (const buffer of r.buffers) requireBytes(r.label, `[${s.count}] f32`, buffer, s.count * 4);
    r.count = s.count;
    r.uniforms.set({ count: s.count, scale: s.scale ?? 1 });
  }

  encode(pass: GPUComputePassEncoder, r: ResidualBinding, count: number): void {
    pass.setPipeline(r.pipeline);
    pass.setBindGroup(0, r.bindGroup);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, count, RESIDUAL_CONSTANTS.WORKGROUP));
  }
}
