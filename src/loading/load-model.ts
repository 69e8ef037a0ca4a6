// Loading a model folder onto a GPU: reads it with src/io (config, tokenizer, checkpoint, memory checks), uploads the
// weights and builds the engine's decoder, routing record and session. The one place that needs both io and engine.
import type { Gpu } from '../engine/gpu';
import { Decoder } from '../engine/model/decoder';
import { Session } from '../engine/model/session';
import { RoutingStats } from '../engine/routing/stats';
import { openConfigOnly, openModel, folderName } from '../io/model';
import { findGguf, openGguf } from '../io/gguf-model';
import { assertFitsInMemory, limitsOf, memoryBudget } from '../io/memory';
import type { ModelFolder } from '../io/source';
import { UnsupportedModelError } from '../io/errors';
import { uploadWeights } from './upload-weights';
import { summarizeFormats } from '../model/weight-formats';

export interface LoadOptions {
  /** Context length (KV cache rows); default min(config max positions, 1024). */
  contextLength?: number;
  /** Tokens per forward step; longer inputs are processed in chunks. Default 64. */
  maxTokensPerStep?: number;
  /**
   * Total GPU memory the model may take, as the person set it (`origin` names the setting in messages: "set with
   * --memory"). Default: from the adapter's memory heaps where exposed, else src/io/memory.ts's default.
   */
  memory?: { bytes: number; origin: string };
  /** How the person raises the budget, for the refusal message (`run with --memory 61GB or more`). */
  raiseBudget?: (neededBytes: number) => string;
  /** Bytes one storage binding may hold (default: the device's limit); expert banks above it are split. */
  maxBindingBytes?: number;
  /** Bytes of weights written between waits for the GPU queue (default: upload-weights.ts's UPLOAD_WINDOW_BYTES). */
  uploadWindowBytes?: number;
  /** Fused kernels (default true); false runs each op as its own kernel (DecoderOptions.fuse). */
  fuse?: boolean;
  /** The routing record (default true); false only to measure what it costs (DecoderOptions.routingRecord). */
  routingRecord?: boolean;
  /**
   * Time steps with timestamp queries: true splits a step into one pass per module (Session.timings), 'dispatch'
   * into one pass per dispatch (Session.dispatchTimings).
   */
  profile?: boolean | 'dispatch';
  onProgress?: (done: number, total: number) => void;
  /** Name used in messages (default: the folder's location). */
  name?: string;
}

/**
 * Loads a model folder onto `gpu`: config.json, tokenizer.json and the safetensors checkpoint, or a single GGUF file
 * (config, tokenizer and weights from the one file; quantised tensors stay packed on the GPU).
 */
export async function loadModel(gpu: Gpu, folder: ModelFolder, options: LoadOptions = {}): Promise<Session> {
  const name = options.name ?? folderName(folder.location);
  const ggufFile = await findGguf(folder);
  const gguf = ggufFile ? await openGguf(folder, ggufFile) : null; // the header only: config, plan, tokenizer
  const config = gguf?.config ?? (await openConfigOnly(folder));
  if (config.unsupported) throw new UnsupportedModelError(config.source, `${config.family}: ${config.unsupported}`);
  // Dynamic NTK RoPE exists to run past max_position_embeddings; other models stop there.
  const positionLimit = config.ropeScaling?.type === 'dynamic' ? Infinity : config.maxPositions;
  const contextLength = Math.min(options.contextLength ?? 1024, positionLimit);
  const stepTokens = options.maxTokensPerStep ?? 64;
  const limits = limitsOf(gpu.limits, memoryBudget(gpu.adapter.memoryHeaps, options.memory), options.raiseBudget);
  const memory = { contextLength, stepTokens, ringCapacity: contextLength };
  // From the config alone first, so a model far too large fails before anything else is read (a GGUF header already
  // gave the plan: its exact, quantised sizes are checked below).
  if (!gguf) assertFitsInMemory(config, limits, memory, name);
  const opened = gguf ?? (await openModel(folder));
  assertFitsInMemory(opened.config, limits, memory, name, opened.plan);
  gpu.assertAlive();
  // All or nothing: a failure part-way (out of memory, a short read, a lost device) frees what was made so far, and
  // whatever the caller had loaded before keeps working.
  return gpu.allOrNothing(async () => {
    const weights = await uploadWeights(gpu, { folder }, opened.plan, {
      onProgress: options.onProgress,
      keepF32: (entry) => entry.role === 'finalNorm',
      maxBindingBytes: options.maxBindingBytes,
      windowBytes: options.uploadWindowBytes,
    });
    const stats = new RoutingStats(gpu, opened.config, { ringCapacity: contextLength });
    const decoder = new Decoder(gpu, opened.config, weights, stats, { maxTokensPerStep: stepTokens, maxSeq: contextLength, fuse: options.fuse, routingRecord: options.routingRecord });
    const session = new Session(gpu, opened.config, opened.tokenizer, decoder, stats, weights, options.profile ?? false);
    session.weightFormats = summarizeFormats(opened.plan.entries);
    return session;
  });
}

