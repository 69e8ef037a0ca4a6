// Per-dispatch GPU timings: every dispatch of a step recorded in its own compute pass with begin/end timestamps, so
// each kernel of a decode step is timed alone (Profiler times one pass per module). The step's code is unchanged:
// wrap(encoder) hands it an encoder whose compute passes only remember the pipeline and bind groups set, and each
// dispatchWorkgroups opens a timed pass on the real encoder, sets them again, dispatches and ends it.
//
// Timed passes cost what a pass costs (begin/end and the barrier between passes), and kernels that would overlap
// in one pass run one after another, so the sum over a step's dispatches is above the fused step's GPU time; the
// ranking is what this is for. Dawn's Node bindings have no writeTimestamp on a pass (the
// chromium-experimental-timestamp-query-inside-passes feature has no JavaScript surface there), hence one pass each.
import type { Gpu } from './gpu';
import { Profiler } from './profiler';

/** What a step dispatched at one position (the same for every step of the same token count). */
export interface DispatchInfo {
  /** Position in the step, from 0. */
  index: number;
  /** Label of the bind group at index 0 (`Layer3.moe.router`): the kernel instance. */
  label: string;
  /** The pipeline's label (`moe_router.main`): the shader and entry point. */
  pipeline: string;
  workgroups: [number, number, number];
  /** Weight bytes the dispatch reads (DispatchProfiler's weightReads); null when it binds no weights. */
  weightBytes: number | null;
}

export interface DispatchTiming extends DispatchInfo {
  /** Mean GPU time of the dispatch's pass over the timed steps, microseconds. */
  micros: number;
  samples: number;
}

/** Bytes a dispatch reads from the weights its bind groups bind, or null when they bind none. */
export type WeightReads = (dispatch: { label: string; pipeline: string }, groups: readonly GPUBindGroup[]) => number | null;

interface PassState {
  pipeline: GPUComputePipeline | null;
  groups: (GPUBindGroup | null)[];
}

export class DispatchProfiler {
  readonly enabled: boolean;
  private readonly timer: Profiler;
  private readonly infos = new Map<string, DispatchInfo>();
  private index = 0;

  constructor(
    gpu: Gpu,
    private readonly weightReads: WeightReads = () => null,
    /** Dispatches per step at most (two timestamps each; a query set holds at most 4096). */
    maxDispatches = 2048,
  ) {
    this.timer = new Profiler(gpu, maxDispatches);
    this.enabled = this.timer.enabled;
  }

  /** Start of a step of `tokens` tokens. */
  beginStep(tokens = 1): void {
    this.timer.beginStep(tokens);
    this.index = 0;
  }

  /** An encoder for the step's recording: its compute passes time each dispatch; every other call goes to `encoder`. */
  wrap(encoder: GPUCommandEncoder): GPUCommandEncoder {
    return new Proxy(encoder, {
      get: (target, key) => {
        if (key === 'beginComputePass') return (descriptor?: GPUComputePassDescriptor) => this.splitPass(target, descriptor?.label ?? '');
        const v = Reflect.get(target, key);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }

  /** Resolve the step's timestamps (before finishing the real encoder). */
  resolve(encoder: GPUCommandEncoder): void {
    this.timer.resolve(encoder);
  }

  /** After submit: fold the step's timings in (one read in flight at a time; steps meanwhile are not timed). */
  collect(): Promise<void> {
    return this.timer.collect();
  }

  /** Every dispatch timed since the last reset, in step order. */
  timings(): DispatchTiming[] {
    const out: DispatchTiming[] = [];
    for (const t of this.timer.timings()) {
      const info = this.infos.get(t.name);
      if (info) out.push({ ...info, micros: t.micros, samples: t.samples });
    }
    return out.sort((a, b) => a.index - b.index);
  }

  /** Forget the timings and the dispatches seen (before timing steps of another token count). */
  reset(): void {
    this.timer.reset();
    this.infos.clear();
  }

  destroy(): void {
    this.timer.destroy();
  }

  private splitPass(encoder: GPUCommandEncoder, label: string): GPUComputePassEncoder {
    const state: PassState = { pipeline: null, groups: [] };
    const pass = {
      label,
      setPipeline: (pipeline: GPUComputePipeline) => void (state.pipeline = pipeline),
      setBindGroup: (index: number, group: GPUBindGroup | null) => void (state.groups[index] = group),
      dispatchWorkgroups: (x: number, y = 1, z = 1) => this.dispatch(encoder, state, [x, y, z]),
      end: () => {},
    };
    return pass as unknown as GPUComputePassEncoder;
  }

  private dispatch(encoder: GPUCommandEncoder, state: PassState, workgroups: [number, number, number]): void {
    if (!state.pipeline || !state.groups[0]) throw new Error('DispatchProfiler: a dispatch without a pipeline or bind group 0');
    const key = `dispatch${this.index}`;
    const info = this.describe(state, workgroups);
    const seen = this.infos.get(key);
    if (seen && (seen.label !== info.label || seen.pipeline !== info.pipeline)) {
      throw new Error(`DispatchProfiler: dispatch ${this.index} was ${seen.label} and is now ${info.label}; reset() between steps of different shapes`);
    }
    this.infos.set(key, info);
    this.index++;
    const pass = encoder.beginComputePass({ ...this.timer.passDescriptor(key), label: info.label });
    pass.setPipeline(state.pipeline);
    state.groups.forEach((g, i) => pass.setBindGroup(i, g));
    pass.dispatchWorkgroups(...workgroups);
    pass.end();
  }

  private describe(state: PassState, workgroups: [number, number, number]): DispatchInfo {
    const label = state.groups[0]!.label;
    const pipeline = state.pipeline!.label;
    const groups = state.groups.filter((g): g is GPUBindGroup => g !== null);
    return { index: this.index, label, pipeline, workgroups, weightBytes: this.weightReads({ label, pipeline }, groups) };
  }
}

/** Dispatch timings summed by kernel: labels with their `Layer<l>.` prefix dropped, slowest first. */
export function timingsByKernel(timings: readonly DispatchTiming[]): { kernel: string; dispatches: number; micros: number }[] {
  const by = new Map<string, { kernel: string; dispatches: number; micros: number }>();
  for (const t of timings) {
    const kernel = t.label.replace(/^Layer\d+\./, '');
    const row = by.get(kernel) ?? { kernel, dispatches: 0, micros: 0 };
    row.dispatches++;
    row.micros += t.micros;
    by.set(kernel, row);
  }
  return [...by.values()].sort((a, b) => b.micros - a.micros);
}
