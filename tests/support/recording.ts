// Recording a decode step, observed from outside the engine: dispatches per layer (each dispatch is attributed to the
// `Layer<l>` of the group-0 bind group set before it: every bind group is labelled `Owner.thing`), queue writes, GPU objects
// created, and the CPU time of recording. The counting lives here, outside src/, so a change in the engine cannot
// also change what counts as a dispatch.
import type { Gpu } from '../../src/engine/gpu';
import type { Decoder } from '../../src/engine/model/decoder';
import { loadModel, type LoadOptions } from '../../src/loading/load-model';
import type { Session } from '../../src/engine/model/session';
import { memoryFolder } from '../../src/io/source';
import { byteLevelTokenizerJson, modelFiles, synthModel, type RunnableFamily, type SynthOptions } from './io-models';

export interface StepCount {
  /** Dispatches whose bind group belongs to layer l (index l). */
  perLayer: number[];
  /** Dispatches outside the layers (embedding, final norm, LM head). */
  outside: number;
  /** queue.writeBuffer calls while recording. */
  writes: number;
  /** GPU objects created while recording (buffers, bind groups, pipelines, …). */
  created: number;
  /** Label of the group-0 bind group of each dispatch, in order. */
  labels: string[];
  /** setPipeline / setBindGroup calls that set what the pass already had set. */
  redundant: number;
}

/** A tiny random-weight model of `family` with `layers` layers, loaded as a session (by default steps of ≤ 4 tokens). */
export async function tinySession(
  gpu: Gpu, family: RunnableFamily, layers: number, options: SynthOptions = {}, load: LoadOptions = {},
): Promise<Session> {
  const model = synthModel(family, { ...options, overrides: { num_hidden_layers: layers, vocab_size: 263, ...options.overrides } });
  if (family === 'gpt_oss') {
    model.config.layer_types = Array.from({ length: layers }, (_, l) => (l % 2 ? 'full_attention' : 'sliding_attention'));
  }
  const files = modelFiles(model, { extra: { 'tokenizer.json': JSON.stringify(byteLevelTokenizerJson()) } });
  return loadModel(gpu, memoryFolder(files, `models/tiny-${family}`), { contextLength: 64, maxTokensPerStep: 4, ...load });
}

const LAYER = /^Layer(\d+)\./;

/** Records one step of T tokens at `startPos` through a counting proxy of the encoder, device and queue. */
export function countStep(gpu: Gpu, decoder: Decoder, T: number, startPos: number): StepCount {
  const perLayer = new Array<number>(decoder.config.numLayers).fill(0);
  const count: StepCount = { perLayer, outside: 0, writes: 0, created: 0, labels: [], redundant: 0 };
  const device = gpu.device;
  const queue = device.queue;
  const restore: (() => void)[] = [];
  const spy = <O extends object>(target: O, name: keyof O & string, before: () => void) => {
    const original = (target as Record<string, unknown>)[name] as (...a: unknown[]) => unknown;
    (target as Record<string, unknown>)[name] = (...a: unknown[]) => {
      before();
      return original.apply(target, a);
    };
    restore.push(() => delete (target as Record<string, unknown>)[name]);
  };
  spy(queue, 'writeBuffer', () => count.writes++);
  for (const name of ['createBuffer', 'createBindGroup', 'createComputePipeline', 'createBindGroupLayout', 'createPipelineLayout', 'createShaderModule'] as const) {
    spy(device, name, () => count.created++);
  }
  const encoder = device.createCommandEncoder({ label: 'countStep' });
  let owner = -1;
  let group0 = '';
  const counting = new Proxy(encoder, {
    get(target, key) {
      if (key === 'beginComputePass') {
        return (descriptor?: GPUComputePassDescriptor) => {
          const pass = target.beginComputePass(descriptor);
          let pipeline: GPUComputePipeline | null = null;
          const groups: GPUBindGroup[] = [];
          return new Proxy(pass, {
            get(p, k) {
              if (k === 'setPipeline') {
                return (next: GPUComputePipeline) => {
                  if (next === pipeline) count.redundant++;
                  pipeline = next;
                  return p.setPipeline(next);
                };
              }
              if (k === 'setBindGroup') {
                return (index: number, group: GPUBindGroup, ...rest: unknown[]) => {
                  if (groups[index] === group) count.redundant++;
                  groups[index] = group;
                  if (index === 0) {
                    group0 = group.label;
                    const m = LAYER.exec(group.label);
                    owner = m ? Number(m[1]) : -1;
                  }
                  return (p.setBindGroup as (...a: unknown[]) => void)(index, group, ...rest);
                };
              }
              if (k === 'dispatchWorkgroups') {
                return (...a: number[]) => {
                  count.labels.push(group0);
                  if (owner >= 0) perLayer[owner]++;
                  else count.outside++;
                  return p.dispatchWorkgroups(a[0], a[1], a[2]);
                };
              }
              const v = Reflect.get(p, k);
              return typeof v === 'function' ? v.bind(p) : v;
            },
          });
        };
      }
      const v = Reflect.get(target, key);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  try {
    decoder.encodeStep(counting, T, startPos);
  } finally {
    for (const r of restore) r();
  }
  queue.submit([encoder.finish()]);
  return count;
}
