// What the dashboard shows: a model that runs (a ModelSession with its tokenizer and samples) or one drawn from its
// config.json alone (too large for this GPU, or an architecture the engine does not run). Loading goes through src/io
// (config normalisation, checkpoint checks, tokenizer) and the engine's model loader.
import type { Gpu } from '../engine/gpu';
import { countParameters, type MoeConfig, type ParameterCounts } from '../model/config';
import type { KernelTiming, ModelSession } from '../engine/session-api';
import { loadModel } from '../loading/load-model';
import { raiseInPage, readMemorySetting } from './memory-setting';
import type { Session } from '../engine/model/session';
import {
  CONFIG_FILE,
  configSource,
  folderName,
  normalizeConfig,
  openConfigOnly,
  OutOfMemoryError,
  readJson,
  UnsupportedModelError,
  urlFolder,
  type ModelFolder,
} from '../io';
import { formatCount } from '../viz/panels/model-info';
import { ExpertWeightReader } from './expert-weights';
import { findGguf, openGguf } from '../io';
import type { FormatGroupRow } from '../model/weight-formats';
import { parseSamples, type Sample } from './samples';
import type { TokenTexts } from './stepper';

export interface LoadedModel {
  /** Id used in the URL and the model picker: 'demo:<name>', 'config:<file>', 'folder:<name>'. */
  id: string;
  name: string;
  config: MoeConfig;
  parameters: ParameterCounts;
  /** Null for a config-only model. */
  session: ModelSession | null;
  tokenizer: TokenTexts | null;
  samples: Sample[];
  /** One line about the model shown in the header (what it is, or why it is drawn without running). */
  note: string;
  /** Format, parameters and bytes per tensor group of a running model's weights (GGUF files mix formats). */
  weightFormats?: readonly FormatGroupRow[];
  /** Per-kernel GPU times and their resolution, when the engine measures them. */
  /** Reads expert weights of a layer for the inspector (running models only). */
  weights?: ExpertWeightReader;
  timings?: () => { kernels: KernelTiming[]; note: string; memory: { module: string; bytes: number }[] } | null;
  /** A replayed trace (src/ui/trace-open.ts): why gate weights or router probabilities cannot be shown, or null. */
  replay?: { weights: string | null; probs: string | null };
  /** A model to compare with other than the bundled counterpart (a second trace picked with this one). */
  compareWith?: { name: string; load: (onProgress: Progress) => Promise<LoadedModel> };
  destroy(): void;
}

export type Progress = (fraction: number, what: string) => void;

/**
 * The other checkpoint of a bundled demo model to compare with: `<name>` and `<name>-early` (the demo training saves
 * both), or null.
 */
export function compareCounterpart(id: string): string | null {
  if (!id.startsWith('demo:')) return null;
  const name = id.slice(5);
  const other = name.endsWith('-early') ? name.slice(0, -'-early'.length) : `${name}-early`;
  return bundledModels().includes(other) ? `demo:${other}` : null;
}

/** Folders under public/models/ with a config.json and their files, listed by vite.config.ts at server/build start. */
declare const __MOESCOPE_BUNDLED_MODELS__: Record<string, string[]>;

const bundled = (): Record<string, string[]> =>
  typeof __MOESCOPE_BUNDLED_MODELS__ === 'undefined' ? {} : __MOESCOPE_BUNDLED_MODELS__;

export function bundledModels(): string[] {
  return Object.keys(bundled()).sort();
}

export interface BundledConfig {
  file: string;
  name: string;
  repo: string;
}

/** The published config.json files shipped for skeleton views (public/configs/index.json). */
export async function bundledConfigs(): Promise<BundledConfig[]> {
  const res = await fetch(`${import.meta.env.BASE_URL}configs/index.json`);
  if (!res.ok) throw new Error(`configs/index.json: HTTP ${res.status}`);
  return (await res.json()) as BundledConfig[];
}

/** A model drawn from its config alone; `reason` says why it is not run. */
export function configOnlyModel(id: string, name: string, config: MoeConfig, reason: string): LoadedModel {
  const parameters = countParameters(config);
  return {
    id,
    name,
    config,
    parameters,
    session: null,
    tokenizer: null,
    samples: [],
    note:
      `Config only: ${formatCount(parameters.total)} parameters, ${config.numLayers} layers × ` +
      `${config.numExperts} experts, k = ${config.router.topK}. ${reason} No routing data is shown.`,
    destroy: () => {},
  };
}

/** One of public/configs/*.json, drawn as a skeleton. */
export async function loadBundledConfig(file: string): Promise<LoadedModel> {
  const folder = urlFolder(`${import.meta.env.BASE_URL}configs/`, { files: [file] });
  const config = normalizeConfig(await readJson(folder, file), `configs/${file}`);
  const list = await bundledConfigs().catch(() => [] as BundledConfig[]);
  const name = list.find((c) => c.file === file)?.name ?? file.replace(/\.json$/, '');
  const reason = config.unsupported
    ? `Not runnable here: ${config.unsupported}.`
    : 'Its weights are not bundled (far too large for this page).';
  return configOnlyModel(`config:${file}`, name, config, reason);
}

/** A folder with config.json but no weights: drawn from its config. */
export async function loadConfigFolder(folder: ModelFolder, id: string): Promise<LoadedModel> {
  const config = await openConfigOnly(folder);
  const reason = config.unsupported ? `Not runnable here: ${config.unsupported}.` : 'The folder has no *.safetensors weights.';
  return configOnlyModel(id, folderName(folder.location), config, reason);
}

export { CONFIG_FILE, configSource };

/** The bundled demo model under public/models/<name>/, run by the engine. */
export async function loadBundledModel(gpu: Gpu, name: string, onProgress: Progress): Promise<LoadedModel> {
  const files = bundled()[name];
  if (!files) throw new Error(`no bundled model "${name}" (public/models/ has ${bundledModels().join(', ') || 'none'})`);
  // The file list is given: the server is never asked about files the folder does not have.
  const folder = urlFolder(`${import.meta.env.BASE_URL}models/${name}/`, { files });
  return loadFolder(gpu, folder, onProgress, `demo:${name}`, name);
}

const SAMPLES_FILE = 'samples.json';

/** A model folder: run it when it has safetensors weights, else draw it from its config. */
export async function loadFolder(
  gpu: Gpu,
  folder: ModelFolder,
  onProgress: Progress,
  id = `folder:${folderName(folder.location)}`,
  name = folderName(folder.location),
): Promise<LoadedModel> {
  const files = await folder.list();
  // A URL folder lists nothing; it is asked for the single-file checkpoint or the shard index instead.
  const hasWeights =
    files.some((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json' || f.toLowerCase().endsWith('.gguf')) ||
    (files.length === 0 && ((await folder.has('model.safetensors')) || (await folder.has('model.safetensors.index.json'))));
  if (!hasWeights) return loadConfigFolder(folder, id);

  onProgress(0, `${name}: reading config and checkpoint headers`);
  let session: Session;
  try {
    session = await loadModel(gpu, folder, {
      name,
      memory: readMemorySetting(localStorage),
      raiseBudget: raiseInPage,
      profile: gpu.features.timestampQuery,
      onProgress: (done, total) => onProgress(total > 0 ? done / total : 0, `${name}: uploading weights ${formatMiB(done)} / ${formatMiB(total)}`),
      onCompiling: () => onProgress(1, `${name}: compiling GPU kernels`),
    });
  } catch (e) {
    // A model too big for this GPU (or one the engine cannot run) is still drawn, with the reason.
    if (e instanceof OutOfMemoryError || e instanceof UnsupportedModelError) {
      const gguf = await findGguf(folder);
      const config = gguf ? (await openGguf(folder, gguf)).config : await openConfigOnly(folder);
      return configOnlyModel(id, name, config, `${(e as Error).message}.`);
    }
    throw e;
  }
  const samples = (await folder.has(SAMPLES_FILE)) ? parseSamples(await readJson(folder, SAMPLES_FILE), `${name}/${SAMPLES_FILE}`) : [];
  const tokenizer = session.tokenizer;
  const config = session.config;
  const resolution = gpu.features.timestampQuery
    ? `GPU time per step from timestamp queries (${session.profiler?.resolutionNote ?? 'resolution set by the browser'}; Chrome rounds to 100 µs unless WebGPU developer features are on).`
    : 'This adapter has no timestamp-query feature: no per-kernel GPU times.';
  return {
    id,
    name,
    config,
    parameters: session.parameters,
    session,
    tokenizer: {
      encode: (text) => tokenizer.encode(text),
      tokenText: (tokenId) => tokenizer.piece(tokenId).text,
    },
    samples,
    note:
      `${formatCount(session.parameters.total)} parameters (${formatCount(session.parameters.activePerToken)} active per token), ` +
      `${config.numLayers} layers × ${config.numExperts} experts, k = ${config.router.topK}, ${formatsNote(session.weightFormats)} weights, ` +
      `running on ${adapterName(gpu)}.`,
    timings: () => ({
      kernels: session.timings().map((t) => ({ name: t.name, micros: t.micros, microsPerToken: t.microsPerToken, samples: t.samples })),
      note: resolution,
      memory: session.memory(),
    }),
    weightFormats: session.weightFormats,
    weights: new ExpertWeightReader(folder),
    destroy: () => session.destroy(),
  };
}

/** "bf16", or for mixed formats each with its share of the bytes: "Q8_0 71%, F16 20%, F32 9%". */
function formatsNote(rows: readonly FormatGroupRow[]): string {
  const bytes = new Map<string, number>();
  for (const r of rows) bytes.set(r.format, (bytes.get(r.format) ?? 0) + r.bytes);
  if (bytes.size === 1) return [...bytes.keys()][0];
  const total = [...bytes.values()].reduce((a, b) => a + b, 0);
  return [...bytes].sort((a, b) => b[1] - a[1]).map(([f, n]) => `${f.toUpperCase()} ${((100 * n) / total).toFixed(0)}%`).join(', ');
}

function adapterName(gpu: Gpu): string {
  const a = gpu.adapter;
  const parts = [a.vendor, a.architecture, a.device, a.description].filter((p, i, all) => p && all.indexOf(p) === i);
  return parts.length ? `the ${parts.join(' ')} adapter` : 'this GPU';
}

function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
