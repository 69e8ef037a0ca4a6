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
import { emptyWeights, uploadWeights, type UploadOptions, type UploadedWeights } from './upload-weights';
import type { LoadPlan, PlanEntry } from '../io/weights';
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
  /** Called once the weights are uploaded, before waiting for the GPU kernels still compiling. */
  onCompiling?: () => void;
  /** Name used in messages (default: the folder's location). */
  name?: string;
}

/**
 * Loads a model folder onto `gpu`: config.json, tokenizer.json and the safetensors checkpoint, or a single GGUF file
 * (config, tokenizer and weights from the one file; quantised tensors stay packed on the GPU).
 */
export async function loadModel(gpu: Gpu, folder: ModelFolder, options: LoadOptions = {}): Promise<Session> {
  const name = options.name ?? folderName(folder.location);
  const phases: Record<string, number> = {};
  let last = performance.now();
  const phase = (what: string) => {
    const now = performance.now();
    phases[what] = Math.round(now - last);
    last = now;
  };
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
  phase('read');
  const upload = { keepF32: (entry: PlanEntry) => entry.role === 'finalNorm', maxBindingBytes: options.maxBindingBytes };
  const build = (g: Gpu, weights: UploadedWeights): Session => {
    const stats = new RoutingStats(g, opened.config, { ringCapacity: contextLength });
    const decoder = new Decoder(g, opened.config, weights, stats, { maxTokensPerStep: stepTokens, maxSeq: contextLength, fuse: options.fuse, routingRecord: options.routingRecord });
    return new Session(g, opened.config, opened.tokenizer, decoder, stats, weights, options.profile ?? false);
  };
  // The pipelines compile while the weights upload; the build below finds them cached.
  const compiled = await compileAhead(gpu, opened.plan, upload, build, [1, Math.min(stepTokens, contextLength)]);
  phase('plan');
  // All or nothing: a failure part-way (out of memory, a short read, a lost device, a pipeline that failed to compile)
  // frees what was made so far, and whatever the caller had loaded before keeps working.
  return gpu.allOrNothing(async () => {
    const weights = await uploadWeights(gpu, { folder }, opened.plan, {
      ...upload,
      onProgress: options.onProgress,
      windowBytes: options.uploadWindowBytes,
    });
    phase('upload');
    options.onCompiling?.();
    await compiled.done;
    phase('pipelines');
    const session = build(gpu, weights);
    session.weightFormats = summarizeFormats(opened.plan.entries);
    phase('build');
    session.loadPhases = phases;
    return session;
  });
}

/**
 * Starts compiling, in parallel (Gpu.compilePipelines), every pipeline `build` and its steps will ask for: the build
 * runs first on a planner (an inert device: nothing allocated, uploaded or compiled) and records a step of each of
 * `steps` tokens there (MoE layers bind their experts at their first step). `done` settles when all have compiled, or
 * rejects naming the kernel that failed.
 */
async function compileAhead(
  gpu: Gpu, plan: LoadPlan, upload: UploadOptions, build: (g: Gpu, weights: UploadedWeights) => Session, steps: number[],
): Promise<{ done: Promise<void> }> {
  const planner = gpu.planner();
  const planned = build(planner, await emptyWeights(planner, plan, upload));
  for (const T of new Set(steps)) planned.decoder.encodeStep(planner.device.createCommandEncoder(), T, 0);
  const done = gpu.compilePipelines(planner.pipelineRequests);
  done.catch(() => undefined); // awaited by the caller after the upload, which may fail first
  return { done };
}
