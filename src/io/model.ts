// Opening a model folder: config.json → MoeConfig, checkpoint headers → load plan, tokenizer; every check made
// before the engine allocates or uploads anything. Also the config-only path for models too big (or too different)
// to run, which the dashboard still draws.
import type { MoeConfig } from '../model/config';
import { declaredWeightDtype, normalizeConfig } from './config';
import { ModelFileError, UnsupportedModelError, tensorField } from './errors';
import { checkMemory } from './memory';
import type { GpuMemoryLimits, MemoryCheck, MemoryOptions } from './memory';
import { openCheckpoint, SAFETENSORS_DTYPE, weightDtypeOf } from './safetensors';
import type { Checkpoint } from './safetensors';
import { readJson } from './source';
import type { ModelFolder } from './source';
import { loadTokenizer } from './tokenizer';
import type { ModelTokenizer } from './tokenizer';
import { buildLoadPlan, FAMILY_TABLES } from './weights';
import type { LoadPlan } from './weights';

export const CONFIG_FILE = 'config.json';

export interface OpenedModel {
  folder: ModelFolder;
  /** Short name for messages: the folder's last path segment. */
  name: string;
  config: MoeConfig;
  checkpoint: Checkpoint;
  plan: LoadPlan;
  tokenizer: ModelTokenizer;
}

/** The last segment of a folder location ("/models/Mixtral-8x7B-v0.1/" → "Mixtral-8x7B-v0.1"). */
export function folderName(location: string): string {
  const parts = location.split(/[/\\]/).filter((p) => p.length > 0);
  return parts.length ? parts[parts.length - 1] : location;
}

/** Where a folder's config.json is, for MoeConfig.source and messages. */
export function configSource(folder: ModelFolder): string {
  const loc = folder.location;
  return loc.endsWith('/') || loc.endsWith('\\') ? loc + CONFIG_FILE : `${loc}/${CONFIG_FILE}`;
}

/** config.json of a folder, normalised (models the engine cannot run come back with `unsupported` set). */
export async function openConfigOnly(folder: ModelFolder): Promise<MoeConfig> {
  return normalizeConfig(await readJson(folder, CONFIG_FILE), configSource(folder));
}

/**
 * Opens a runnable model: config, checkpoint headers (all shards), load plan with every dtype and shape checked,
 * and the tokenizer (its ids must fit config.json's vocab_size). Reads only headers and JSON, never tensor data.
 * `ffnOnly` opens any supported family without its attention weights (see PlanOptions.ffnOnly), e.g. DeepSeek's
 * MoE blocks for routing tests.
 */
export async function openModel(folder: ModelFolder, options: { ffnOnly?: boolean } = {}): Promise<OpenedModel> {
  const json = await readJson(folder, CONFIG_FILE);
  const source = configSource(folder);
  const config = normalizeConfig(json, source);
  if (config.unsupported && !options.ffnOnly) throw new UnsupportedModelError(source, config.unsupported);
  const checkpoint = await openCheckpoint(folder);

  // A config.json without torch_dtype: the checkpoint's embedding decides, and every other tensor must agree.
  let dtypeOrigin: string | undefined;
  if (declaredWeightDtype(json, source) === null) {
    const embedKey = FAMILY_TABLES[config.family]!.embed;
    const embed = checkpoint.tensors.get(embedKey);
    if (!embed) throw new ModelFileError(checkpoint.entryFile, tensorField(embedKey), 'missing (embedding)');
    config.weightDtype = weightDtypeOf(embed);
    dtypeOrigin = `the checkpoint's embedding is ${SAFETENSORS_DTYPE[config.weightDtype]} (config.json declares no torch_dtype)`;
  }
  const plan = buildLoadPlan(config, checkpoint, { dtypeOrigin, ffnOnly: options.ffnOnly });

  const tokenizer = await loadTokenizer(folder);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ModelFileError(
      'tokenizer.json', null,
      `has token ids up to ${tokenizer.vocabSize - 1} but ${source}: field "vocab_size" is ${config.vocabSize}`,
    );
  }
  return { folder, name: folderName(folder.location), config, checkpoint, plan, tokenizer };
}

/** The memory check for an opened model (exact weight bytes from its plan). */
export function checkModelMemory(model: OpenedModel, limits: GpuMemoryLimits, options: MemoryOptions): MemoryCheck {
  return checkMemory(model.config, limits, options, model.name, model.plan);
}
