// Row softmax kernel with temperature (shaders/softmax.wgsl): one workgroup per row.
import type { Gpu } from '../gpu';
import { Uniforms, type UniformLayout, bindGroup, kernelLayout } from './common';
import { requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/softmax.wgsl. */
export const SOFTMAX_PARAMS: UniformLayout = { fields: ['rows', 'cols', 'stride', 'inv_temperature'], floats: ['inv_temperature'] };

export const SOFTMAX_CONSTANTS = { WORKGROUP: 256 };

export interface SoftmaxShape {
  rows: number;
  cols: number;
  /** Elements between rows of x and out (default cols). */
  stride?: number;
  /** Softmax of x / temperature (default 1); must be > 0. */
  temperature?: number;
}

export interface SoftmaxBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  x: GPUBuffer;
  out: GPUBuffer;
}

export class SoftmaxKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(private readonly gpu: Gpu) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'rw']);
    this.pipeline = gpu.pipeline('softmax', 'main', SOFTMAX_CONSTANTS, this.layout.pipelineLayout, this.layout.key);
  }

  /** x: [rows, stride] f32; out: [rows, stride] f32, a different buffer. */
  bind(label: string, x: GPUBuffer, out: GPUBuffer): SoftmaxBinding {
    if (x === out) throw new Error(`${label}: out must differ from x`);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, SOFTMAX_PARAMS);
    return { uniforms, bindGroup: bindGroup(this.gpu, label, this.layout, [uniforms.buffer, x, out]), label, x, out };
  }

  /** Writes the shape uniform (queue write, no allocation). */
  setShape(b: SoftmaxBinding, s: SoftmaxShape): void {
    const stride = s.stride ?? s.cols;
    const temperature = s.temperature ?? 1;
    requireInt(b.label, 'rows', s.rows, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    requireInt(b.label, 'cols', s.cols, 1);
    if (stride < s.cols) throw new Error(`${b.label}: stride ${stride} < cols ${s.cols}`);
    if (!(temperature > 0)) throw new Error(`${b.label}: temperature must be > 0, got ${temperature}`);
    const bytes = ((s.rows - 1) * stride + s.cols) * 4;
    requireBytes(b.label, `x [${s.rows}, ${stride}]`, b.x, bytes);
    requireBytes(b.label, `out [${s.rows}, ${stride}]`, b.out, bytes);
    b.uniforms.set({ rows: s.rows, cols: s.cols, stride, inv_temperature: 1 / temperature });
  }

  encode(pass: GPUComputePassEncoder, b: SoftmaxBinding, rows: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(rows);
  }
}
