// Reads one layer's expert and router weights from a model folder (through io's load plan, so every checkpoint
// layout reads the same way, GGUF files included) and decodes them to f32 on the CPU, for the expert inspector; GGUF
// blocks through the float64 dequantisation (src/reference/dequant.ts). Not on any hot path.
import { decodeToF32, isQuantFormat } from '../model/dtypes';
import { canonicalMatrix, findGguf, openGguf, openModel, planEntry, type LoadPlan, type ModelFolder, type PlanEntry } from '../io';
import type { MoeConfig } from '../model/config';
import { dequantRef } from '../reference/dequant';
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

/** An entry's values as f32 in canonical order (stored layouts rearranged, block-quantised ones dequantised). */
function decodeEntry(bytes: Uint8Array, e: PlanEntry): Float32Array {
  const layout = e.stored;
  if (layout) {
    const size = e.byteLength / layout.count;
    const matrices = Array.from({ length: layout.count }, (_, i) => canonicalMatrix(bytes.subarray(i * size, (i + 1) * size), layout, size / (layout.rows * layout.cols)));
    bytes = new Uint8Array(e.byteLength);
    matrices.forEach((m, i) => bytes.set(m, i * size));
  }
  if (!isQuantFormat(e.dtype)) return decodeToF32(bytes, e.dtype);
  return Float32Array.from(dequantRef(e.dtype, bytes, e.shape.reduce((a, b) => a * b, 1)));
}

export class ExpertWeightReader {
  private opened: Promise<{ plan: LoadPlan; config: MoeConfig }> | null = null;

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
    const decode = async (e: PlanEntry) => perExpert(decodeEntry(await entryBytes(this.folder, e), e), E);
    return { gateUp: await decode(gateUp), down: await decode(down), router: await decode(router) };
  }

  private open(): Promise<{ plan: LoadPlan; config: MoeConfig }> {
    return (this.opened ??= (async () => {
      const gguf = await findGguf(this.folder);
      return gguf ? openGguf(this.folder, gguf) : openModel(this.folder);
    })());
  }
}
