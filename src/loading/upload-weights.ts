// Streams a checkpoint's load plan (src/io/weights.ts) into GPU buffers, one buffer per plan entry.
// Expert banks larger than one storage binding allows are split into buffers of whole experts. Host memory stays
// bounded for checkpoints of any size: queue.writeBuffer copies each chunk into staging memory the device keeps until
// the copy has run, so every UPLOAD_WINDOW_BYTES the queue is flushed and awaited before more is read.
import type { Gpu } from '../engine/gpu';
import { decodeToF32 } from '../model/dtypes';
import type { Checkpoint } from '../io/safetensors';
import { bufferSize, streamLoadPlan, type LoadPlan, type PlanEntry } from '../io/weights';
import type { ExpertBank } from '../engine/routing/moe-layer';
import { expertsPerBinding } from '../engine/routing/expert-bank';
import type { UploadedWeights } from '../engine/model/weights';

export type { UploadedWeights } from '../engine/model/weights';

/** Entries the engine keeps in f32 whatever the checkpoint stores (tiny vectors the kernels read as f32). */
const F32_ROLES = new Set(['routerCorrectionBias', 'routerBias', 'attnSinks', 'expertsGateUpBias', 'expertsDownBias']);

/** Bytes written between two waits for the queue (bounds the staging memory the device holds at once). */
export const UPLOAD_WINDOW_BYTES = 256 << 20;

export interface UploadOptions {
  onProgress?: (done: number, total: number) => void;
  /** Entry names to also keep on the CPU as f32 (e.g. the final norm, to fold logits scaling into it). */
  keepF32?: (entry: PlanEntry) => boolean;
  /** Bytes one storage binding may hold (default: the device's limit); smaller values split expert banks sooner. */
  maxBindingBytes?: number;
  /** Bytes written between waits for the queue (default UPLOAD_WINDOW_BYTES). */
  windowBytes?: number;
}

/** A bank split over buffers of `expertsPerBuffer` experts; `bytesPerBuffer` is the stride of the split in the entry. */
interface SplitBank extends ExpertBank {
  bytesPerBuffer: number;
}

function isExpertBank(entry: PlanEntry): boolean {
  return entry.role === 'expertsGateUp' || entry.role === 'expertsDown';
}

/** Buffers made for a plan, before any byte is read; `cpuCopies` collect the entries also decoded to f32. */
interface Allocated {
  weights: UploadedWeights;
  splitBanks: Map<string, SplitBank>;
  cpuCopies: Map<string, Uint8Array>;
}

/** Uploads every entry of `plan`; all buffers carry COPY_DST | STORAGE and are labelled `Weights.<name>`. */
export async function uploadWeights(gpu: Gpu, ckpt: Pick<Checkpoint, 'folder'>, plan: LoadPlan, options: UploadOptions = {}): Promise<UploadedWeights> {
  const allocated = await allocate(gpu, plan, options);
  const { weights: { buffers }, splitBanks, cpuCopies } = allocated;
  const windowBytes = options.windowBytes ?? UPLOAD_WINDOW_BYTES;
  let unflushed = 0;
  await streamLoadPlan(
    ckpt,
    plan,
    async (entry, dstOffset, chunk) => {
      unflushed += chunk.byteLength;
      if (unflushed >= windowBytes) {
        gpu.device.queue.submit([]);
        await gpu.device.queue.onSubmittedWorkDone();
        gpu.assertAlive();
        unflushed = 0;
      }
      const copy = cpuCopies.get(entry.name);
      if (copy) copy.set(chunk, dstOffset);
      const bank = splitBanks.get(entry.name);
      if (bank) {
        // A chunk may straddle two buffers of the bank.
        for (let at = 0; at < chunk.byteLength; ) {
          const offset = dstOffset + at;
          const index = Math.floor(offset / bank.bytesPerBuffer);
          const within = offset - index * bank.bytesPerBuffer;
          const n = Math.min(chunk.byteLength - at, bank.bytesPerBuffer - within);
          gpu.device.queue.writeBuffer(bank.buffers[index], within, chunk, at, n);
          at += n;
        }
        return;
      }
      const buffer = buffers.get(entry.name);
      if (buffer) gpu.device.queue.writeBuffer(buffer, dstOffset, chunk);
    },
    { onProgress: options.onProgress },
  );

  return finish(gpu, plan, allocated);
}

/**
 * The weights uploadWeights would make for `plan`, with nothing read (the f32 copies are zeros): what building the
 * decoder needs to know of them (buffer sizes, formats, banks), for a planner Gpu (Gpu.planner()).
 */
export async function emptyWeights(gpu: Gpu, plan: LoadPlan, options: UploadOptions = {}): Promise<UploadedWeights> {
  return finish(gpu, plan, await allocate(gpu, plan, options));
}

async function allocate(gpu: Gpu, plan: LoadPlan, options: UploadOptions): Promise<Allocated> {
  const maxBinding = Math.min(options.maxBindingBytes ?? Infinity, gpu.limits.maxStorageBufferBindingSize);
  const weights: UploadedWeights = { buffers: new Map(), banks: new Map(), formats: new Map(plan.entries.map((e) => [e.name, e.dtype])), f32: new Map(), bytes: 0 };
  const { buffers, banks } = weights;
  const splitBanks = new Map<string, SplitBank>();
  const cpuCopies = new Map<string, Uint8Array>();
  const make = (label: string, size: number) => weightBuffer(gpu, weights, label, size);

  await gpu.checked(() => {
    for (const entry of plan.entries) {
      const size = bufferSize(entry);
      if (isExpertBank(entry) && size > maxBinding) {
        // Consecutive experts per buffer, as the MoE kernels expect (src/engine/routing/expert-bank.ts).
        const experts = entry.shape[0];
        const bytesPerExpert = entry.byteLength / experts;
        if (bytesPerExpert % 4 !== 0) throw new Error(`${entry.name}: an expert of ${bytesPerExpert} bytes cannot be split on 4-byte words`);
        const elementsPerExpert = entry.shape.slice(1).reduce((a, b) => a * b, 1);
        const perBuffer = expertsPerBinding(gpu, elementsPerExpert, entry.dtype, maxBinding);
        const list: GPUBuffer[] = [];
        for (let e = 0; e < experts; e += perBuffer) {
          list.push(make(`Weights.${entry.name}[${e}]`, Math.min(perBuffer, experts - e) * bytesPerExpert));
        }
        const bank = { buffers: list, expertsPerBuffer: perBuffer, bytesPerBuffer: perBuffer * bytesPerExpert, format: entry.dtype };
        splitBanks.set(entry.name, bank);
        banks.set(entry.name, bank);
        buffers.set(entry.name, list[0]);
      } else if (size > maxBinding) {
        throw new Error(`${entry.name} needs ${size} bytes, more than one storage binding allows (${maxBinding})`);
      } else if (!F32_ROLES.has(entry.role)) {
        const buffer = make(`Weights.${entry.name}`, size);
        buffers.set(entry.name, buffer);
        if (isExpertBank(entry)) banks.set(entry.name, { buffers: [buffer], expertsPerBuffer: entry.shape[0], format: entry.dtype });
      }
      if (F32_ROLES.has(entry.role) || options.keepF32?.(entry)) cpuCopies.set(entry.name, new Uint8Array(size));
    }
  });

  return { weights, splitBanks, cpuCopies };
}

function weightBuffer(gpu: Gpu, weights: UploadedWeights, label: string, size: number): GPUBuffer {
  weights.bytes += size;
  return gpu.createBuffer({
    label,
    size: Math.max(16, Math.ceil(size / 16) * 16),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  });
}

/** Decodes the entries kept as f32; those the kernels read as f32 get their buffers here. */
function finish(gpu: Gpu, plan: LoadPlan, { weights, cpuCopies }: Allocated): UploadedWeights {
  for (const entry of plan.entries) {
    const copy = cpuCopies.get(entry.name);
    if (!copy) continue;
    const values = decodeToF32(copy.subarray(0, entry.byteLength), entry.dtype);
    weights.f32.set(entry.name, values);
    if (F32_ROLES.has(entry.role)) {
      const buffer = weightBuffer(gpu, weights, `Weights.${entry.name}`, values.byteLength);
      gpu.device.queue.writeBuffer(buffer, 0, values);
      weights.buffers.set(entry.name, buffer);
    }
  }
  return weights;
}
