// Token sampling kernel (shaders/sampling.wgsl): greedy argmax, or seeded temperature + top-p sampling, in one
// workgroup, writing the token id to a small result buffer and optionally appending it to a token-id buffer.
import type { Gpu } from '../gpu';
import { Uniforms, type UniformLayout, bindGroup, kernelLayout, storageBuffer } from './common';
import { requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/sampling.wgsl. */
export const SAMPLING_PARAMS: UniformLayout = {
  fields: ['vocab', 'logits_offset', 'greedy', 'seed', 'step', 'append_at', 'inv_temperature', 'top_p', 'u_override'],
  floats: ['inv_temperature', 'top_p', 'u_override'],
};

/** Shared memory the shader declares for a workgroup of `wg` threads (bytes). */
const sharedBytes = (wg: number) => 40 * wg + 96;

/**
 * The largest power-of-two workgroup (64 … 1024) the device allows, shared memory included: one workgroup reads
 * the whole vocabulary several times, so more threads means more loads in flight.
 */
export function samplingWorkgroup(limits: GPUSupportedLimits): number {
  let wg = 1024;
  while (
    wg > 64 &&
    (wg > limits.maxComputeInvocationsPerWorkgroup ||
      wg > limits.maxComputeWorkgroupSizeX ||
      sharedBytes(wg) > limits.maxComputeWorkgroupStorageSize)
  ) {
    wg /= 2;
  }
  return wg;
}

const NONE = 0xffffffff;

/** The shader's PCG hash (one LCG step, then PCG's output permutation). */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> (((state >>> 28) + 4) & 31)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/**
 * The uniform u in [0, 1) the kernel draws with for (seed, step): (pcg(pcg(seed) + step) >> 8) / 2^24, a multiple
 * of 2^-24 and therefore the same number in f32 on the GPU and in float64 here.
 */
export function samplingUniform(seed: number, step: number): number {
  return (pcgHash((pcgHash(seed) + (step >>> 0)) >>> 0) >>> 8) / 16777216;
}

/** Per step. */
export interface SamplingStep {
  /** Row of the logits buffer to sample from (element offset row · vocab); default 0. */
  row?: number;
  /** 0 = greedy (argmax, ties to the lowest index). */
  temperature: number;
  /** Nucleus mass in (0, 1]; default 1 (no cut). Ignored when greedy. */
  topP?: number;
  seed?: number;
  /** Mixed with the seed so each step draws a fresh u (e.g. the position). */
  step?: number;
  /** Replay a draw with this u in [0, 1) instead of the hash. */
  u?: number;
  /** Also write the token to tokens[appendAt]. */
  appendAt?: number;
}

export interface SamplingBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  vocab: number;
  logits: GPUBuffer;
  /** [3] u32: token id, f32 bits of its probability (softmax at the temperature; 1 for greedy), f32 bits of u. */
  result: GPUBuffer;
  tokens: GPUBuffer | null;
}

export interface SampleResult {
  token: number;
  prob: number;
  u: number;
}

/** Decodes the 3 words of a result buffer. */
export function decodeSampleResult(words: Uint32Array): SampleResult {
  const f = new Float32Array(words.buffer, words.byteOffset, 3);
  return { token: words[0], prob: f[1], u: f[2] };
}

export class SamplingKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;
  /** The WGSL overrides of this instance (WORKGROUP: threads of its single workgroup). */
  readonly constants: { WORKGROUP: number };

  /**
   * workgroup: a power of two >= 64; default samplingWorkgroup(device limits), or 64 on a software adapter, which
   * pays per invocation at every barrier (V 4096, top-p: 14 ms at 64 threads, 63 ms at 256 on SwiftShader).
   */
  constructor(
    private readonly gpu: Gpu,
    options: { workgroup?: number } = {},
  ) {
    const wg = options.workgroup ?? (gpu.adapter.software ? 64 : samplingWorkgroup(gpu.limits));
    if (!(wg >= 64 && (wg & (wg - 1)) === 0)) throw new Error(`SamplingKernel: workgroup must be a power of two >= 64, got ${wg}`);
    this.constants = { WORKGROUP: wg };
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'rw', 'rw']);
    this.pipeline = gpu.pipeline('sampling', 'main', this.constants, this.layout.pipelineLayout, this.layout.key);
  }

  /**
   * logits: [rows, vocab] f32; tokens: u32 running token ids the sampled id may be appended to (or null).
   * Creates the binding's result buffer ([3] u32, see SamplingBinding.result).
   */
  bind(label: string, logits: GPUBuffer, tokens: GPUBuffer | null, vocab: number): SamplingBinding {
    requireInt(label, 'vocab', vocab, 1, 2 ** 24); // tie counts are scanned as exact f32 integers
    requireBytes(label, `logits [${vocab}]`, logits, vocab * 4);
    const result = storageBuffer(this.gpu, `${label}.result`, 12);
    const tokenBuffer = tokens ?? storageBuffer(this.gpu, `${label}.noTokens`, 16);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, SAMPLING_PARAMS);
    return {
      uniforms,
      bindGroup: bindGroup(this.gpu, label, this.layout, [uniforms.buffer, logits, result, tokenBuffer]),
      label,
      vocab,
      logits,
      result,
      tokens,
    };
  }

  /** Writes the step's uniform (queue write, no allocation). */
  setStep(b: SamplingBinding, s: SamplingStep): void {
    const row = s.row ?? 0;
    const topP = s.topP ?? 1;
    requireInt(b.label, 'row', row, 0);
    requireBytes(b.label, `logits row ${row} of ${b.vocab}`, b.logits, (row + 1) * b.vocab * 4);
    if (!(s.temperature >= 0)) throw new Error(`${b.label}: temperature must be >= 0, got ${s.temperature}`);
    if (!(topP > 0 && topP <= 1)) throw new Error(`${b.label}: topP must be in (0, 1], got ${topP}`);
    if (s.u !== undefined && !(s.u >= 0 && s.u < 1)) throw new Error(`${b.label}: u must be in [0, 1), got ${s.u}`);
    if (s.appendAt !== undefined) {
      if (!b.tokens) throw new Error(`${b.label}: appendAt given but no tokens buffer was bound`);
      requireInt(b.label, 'appendAt', s.appendAt, 0, NONE - 1);
      requireBytes(b.label, `tokens [${s.appendAt + 1}]`, b.tokens, (s.appendAt + 1) * 4);
    }
    const greedy = s.temperature === 0;
    b.uniforms.set(
      {
        vocab: b.vocab,
        logits_offset: row * b.vocab,
        greedy: greedy ? 1 : 0,
        seed: s.seed ?? 0,
        step: s.step ?? 0,
        append_at: s.appendAt ?? NONE,
        inv_temperature: greedy ? 1 : 1 / s.temperature,
        top_p: topP,
        u_override: s.u ?? -1,
      },
    );
  }

  encode(pass: GPUComputePassEncoder, b: SamplingBinding): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(1);
  }
}
