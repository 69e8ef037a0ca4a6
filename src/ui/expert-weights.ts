// Reads one layer's expert and router weights from a model folder (through io's load plan, so every checkpoint
// layout reads the same way) and decodes them to f32 on the CPU, for the expert inspector. Not on any hot path.
import { decodeToF32 } from '../model/dtypes';
import { openModel, planEntry, type ModelFolder, type OpenedModel, type PlanEntry } from '../io';
import type { ExpertWeights } from '../viz/panels/inspector';

async function entryBytes(folder: ModelFolder, entry: PlanEntry): Promise<Uint8Array> {
  const out = new Uint8Array(entry.byteLength);
  for (const part of entry.parts) {
    const source = await folder.open(part.file);
    try {
      out.set(await source.read(part.byteStart, part.byteEnd - part.byteStart), part.dstOffset);
    } finally {
      await source.close();
    }
  }
  return out;
}

/** Splits a decoded [E, …] tensor into E equal rows. */
function perExpert(values: Float32Array, E: number): Float32Array[] {
  const n = values.length / E;
  return Array.from({ length: E }, (_, e) => values.subarray(e * n, (e + 1) * n));
}

export class ExpertWeightReader {
  private opened: Promise<OpenedModel> | null = null;

  constructor(private readonly folder: ModelFolder) {}

  /** Bytes the inspector reads for `layer` (gate/up, down and router tensors). */
  async bytesFor(layer: number): Promise<number> {
    const { plan } = await this.open();
    return (['expertsGateUp', 'expertsDown', 'router'] as const)
      .map((role) => planEntry(plan, role, layer)?.byteLength ?? 0)
      .reduce((a, b) => a + b, 0);
  }

  async read(layer: number): Promise<ExpertWeights> {
    const { plan, config } = await this.open();
    const gateUp = planEntry(plan, 'expertsGateUp', layer);
    const down = planEntry(plan, 'expertsDown', layer);
    const router = planEntry(plan, 'router', layer);
    if (!gateUp || !down || !router) throw new Error(`layer ${layer} is dense: it has no experts to inspect`);
    const E = config.numExperts;
    const decode = async (e: PlanEntry) => perExpert(decodeToF32(await entryBytes(this.folder, e), e.dtype), E);
    return { gateUp: await decode(gateUp), down: await decode(down), router: await decode(router) };
  }

  private open(): Promise<OpenedModel> {
    return (this.opened ??= openModel(this.folder));
  }
}
