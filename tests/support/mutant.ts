// Deliberately broken kernels: a Gpu sharing the test device whose copy of one shader (or shaders/lib include) has a
// text substitution. Each kernel's tests run one mutant through the same check and expect it to fail, proving the
// check can fail — and that it fails for the right reason: the mutant compiles cleanly, its pipelines are created
// and run without any GPU error, and only its numbers (or routing ids) are wrong. A mutant that does not compile
// would leave NaN-poisoned outputs and "fail" any numeric check while proving nothing.
import { expect } from 'vitest';
import { Gpu } from '../../src/engine/gpu';
import { nodeShader } from '../../src/engine/node/device-node';
import { testGpu } from './gpu';

/** A text substitution in shaders/<shader>.wgsl (`shader` may name an include, e.g. `lib/matmul_core`). */
export interface Mutation {
  shader: string;
  from: string | RegExp;
  to: string;
}

/** A Gpu whose source for one shader is mutated; it records the modules it compiles and its pipelines' errors. */
class MutantGpu extends Gpu {
  /** Compiled modules whose source contains the mutated text. */
  readonly mutatedModules: { name: string; module: GPUShaderModule }[] = [];
  /** One validation scope per pipeline creation (null when the pipeline was created cleanly). */
  readonly pipelineErrors: Promise<GPUError | null>[] = [];
  private readonly uses: { applied: number };

  constructor(base: Gpu, readonly mutation: Mutation) {
    const uses = { applied: 0 };
    super(base.device, base.adapter, (name) => {
      const code = nodeShader(name);
      if (name !== mutation.shader) return code;
      const mutated = code.replace(mutation.from, mutation.to);
      if (mutated === code) throw new Error(`mutation ${String(mutation.from)} does not occur in shaders/${name}.wgsl`);
      uses.applied++;
      return mutated;
    });
    this.uses = uses;
  }

  override module(name: string): GPUShaderModule {
    const before = this.uses.applied;
    const m = super.module(name);
    if (this.uses.applied > before) this.mutatedModules.push({ name, module: m });
    return m;
  }

  override pipeline(...args: Parameters<Gpu['pipeline']>): GPUComputePipeline {
    this.device.pushErrorScope('validation');
    try {
      return super.pipeline(...args);
    } finally {
      this.pipelineErrors.push(this.device.popErrorScope());
    }
  }
}

/**
 * Runs `check` on a Gpu with `mutation` applied and asserts, in this order: (1) every module built from the mutated
 * source compiles with no error message; (2) every pipeline was created without a validation error; (3) running
 * raised no GPU error (validation, out-of-memory or internal; captured in error scopes, none left uncaptured);
 * (4) `check` rejected with a message matching `wrong` (its numbers or ids are wrong).
 */
export async function expectMutantFails(mutation: Mutation, check: (gpu: Gpu) => Promise<unknown>, wrong: RegExp): Promise<void> {
  const gpu = new MutantGpu(await testGpu(), mutation);
  const device = gpu.device;
  const scopes = ['internal', 'out-of-memory', 'validation'] as const;
  for (const s of scopes) device.pushErrorScope(s);
  let failure: unknown = null;
  try {
    await check(gpu);
  } catch (e) {
    failure = e;
  }
  const runErrors: string[] = [];
  for (const s of [...scopes].reverse()) {
    const e = await device.popErrorScope();
    if (e) runErrors.push(`${s}: ${e.message}`);
  }
  const what = `mutant of shaders/${mutation.shader}.wgsl (${String(mutation.from)})`;

  expect(gpu.mutatedModules.length, `${what}: the check compiled the mutated source (it ended with: ${String(failure)})`).toBeGreaterThan(0);
  for (const { name, module } of gpu.mutatedModules) {
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
    expect(errors, `${what}: compile errors in ${name}`).toEqual([]);
  }
  const pipelineErrors = (await Promise.all(gpu.pipelineErrors)).filter((e) => e !== null).map((e) => e.message);
  expect(pipelineErrors, `${what}: pipeline creation errors`).toEqual([]);
  expect(runErrors, `${what}: GPU errors while running`).toEqual([]);
  expect(gpu.recentErrors.map((e) => e.message), `${what}: uncaptured GPU errors`).toEqual([]);

  expect(failure, `${what}: the check passed`).toBeInstanceOf(Error);
  expect((failure as Error).message, `${what}: the check failed for another reason`).toMatch(wrong);
}

export function mutation(shader: string, from: string | RegExp, to: string): Mutation {
  return { shader, from, to };
}
