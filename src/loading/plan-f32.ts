// A model's canonical tensors decoded to f32 on the CPU, by load-plan name (`embed`, `layers.3.expertsGateUp`, …):
// for the float64 reference decoder and for weight comparisons between checkpoints. Not on any hot path.
import { decodeToF32 } from '../model/dtypes';
import { streamLoadPlan, type PlanEntry } from '../io/weights';
import type { OpenedModel } from '../io/model';

/** Every plan entry `keep` accepts (default all), decoded from the checkpoint's dtype to f32. */
export async function planTensorsF32(model: OpenedModel, keep: (entry: PlanEntry) => boolean = () => true): Promise<Map<string, Float32Array>> {
  const entries = model.plan.entries.filter(keep);
  const raw = new Map(entries.map((e) => [e.name, new Uint8Array(Math.ceil(e.byteLength / 4) * 4)]));
  await streamLoadPlan(model.checkpoint, { ...model.plan, entries }, (entry, at, bytes) => raw.get(entry.name)!.set(bytes, at));
  return new Map(entries.map((e) => [e.name, decodeToF32(raw.get(e.name)!.subarray(0, e.byteLength), e.dtype)]));
}
