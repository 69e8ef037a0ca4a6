// Layouts shared by the MoE routing kernels and the host: the per-layer uniform's field order, the per-token record,
// and the plan scratch buffer. The WGSL side is shaders/lib/moe_params.wgsl; keep both in step.
import { K_MAX } from '../../model/limits';
import type { UniformLayout } from './common';

/** `LayerParams` (shaders/lib/moe_params.wgsl). */
export const MOE_LAYER_PARAMS: UniformLayout = {
  fields: [
    'tokens', 'position', 'layer', 'num_layers',
    'hidden', 'experts', 'top_k', 'scoring',
    'norm_topk', 'has_bias', 'has_corr', 'n_group',
    'topk_group', 'group_score', 'shared_mode', 'noise_seed',
    'scale', 'noise_std', 'inv_temp', 'capacity',
    'reroute_ran', 'tile_m', 'ring_capacity', 'max_tokens',
    'mask_words', 'off_prefix', 'off_header', 'off_offsets',
    'off_kept', 'off_tile_expert', 'off_tile_row', 'off_row_key',
    'off_drop_step', 'off_reroute_step', 'choice_offset', 'off_mask_copy',
    'off_starts', 'off_partials', 'residual_scale', 'norm_eps',
  ],
  floats: ['scale', 'noise_std', 'inv_temp', 'residual_scale', 'norm_eps'],
};

/** `ExpertParams` (shaders/lib/moe_expert_params.wgsl): k = reduction length, n = output columns. */
export const EXPERT_PARAMS: UniformLayout = {
  fields: [
    'k', 'n', 'first_expert', 'num_experts',
    'off_header', 'off_offsets', 'off_kept', 'off_tile_expert',
    'off_tile_row', 'off_row_key', 'has_bias', 'bias_stride',
    'act_limit', 'act_alpha', 'act_up_offset', '_pad0',
  ],
  floats: ['act_limit', 'act_alpha', 'act_up_offset'],
};

/** 32-bit words per token in the records scratch buffer (its fields: REC_* in shaders/lib/moe_params.wgsl). */
export const REC = 36;

/** Offsets (u32 words) of the regions of a plan buffer. */
export interface PlanLayout {
  /** Membership bitmasks [experts, maskWords] (at offset 0). */
  maskWords: number;
  /** [experts, words] the masks as moe_plan found them (it clears the masks for the next use). */
  maskCopy: number;
  /** [experts, words] exclusive prefix of per-word popcounts, flattened over experts. */
  prefix: number;
  /** header[0] = tile count. */
  header: number;
  /** [experts] first row of each expert. */
  offsets: number;
  /** [experts] rows each expert keeps this step. */
  kept: number;
  /** [experts] flattened prefix at the expert's first word (its rank 0). */
  starts: number;
  /** [maxTiles] expert of each tile. */
  tileExpert: number;
  /** [maxTiles] first row of each tile. */
  tileRow: number;
  /** [maxRows] token·K_MAX + slot of each row. */
  rowKey: number;
  /** [experts] drops / re-routes decided by moe_reroute this step. */
  dropStep: number;
  rerouteStep: number;
  /**
   * Per-block partials of the two-pass plan (moe_plan_partials → moe_plan_finish), blocks of PLAN_BLOCK_WORDS mask
   * words: [experts, blocks] popcount totals (scanned in place), [experts, blocks] f32 probability mass,
   * [experts, blocks] f32 gate sums, [blocks] f32 z-loss sums; strided by the step's block count.
   */
  partials: number;
  maxTiles: number;
  maxRows: number;
  /** Total words. */
  words: number;
}

/** Mask words (32 tokens each) per workgroup of moe_plan_partials: 128 tokens. */
export const PLAN_BLOCK_WORDS = 4;

/**
 * Plan buffer layout for `experts` experts, up to `maxTokens` tokens and `maxK` slots each, and tiles of at least
 * `minTileRows` rows (each expert's rows are cut into ceil(rows / tile) tiles, so at most ⌊rows / tile⌋ + experts).
 */
export function planLayout(experts: number, maxTokens: number, maxK: number, minTileRows: number): PlanLayout {
  const maskWords = Math.ceil(maxTokens / 32);
  const maxRows = maxTokens * maxK;
  const maxTiles = Math.floor(maxRows / minTileRows) + experts + 1;
  let at = experts * maskWords;
  const take = (n: number) => {
    const o = at;
    at += n;
    return o;
  };
  const maskCopy = take(experts * maskWords);
  const prefix = take(experts * maskWords);
  const header = take(4);
  const offsets = take(experts);
  const kept = take(experts);
  const starts = take(experts);
  const tileExpert = take(maxTiles);
  const tileRow = take(maxTiles);
  const rowKey = take(maxRows);
  const dropStep = take(experts);
  const rerouteStep = take(experts);
  const maxBlocks = Math.ceil(maskWords / PLAN_BLOCK_WORDS);
  const partials = take(3 * experts * maxBlocks + maxBlocks);
  return { maskWords, maskCopy, prefix, header, offsets, kept, starts, tileExpert, tileRow, rowKey, dropStep, rerouteStep, partials, maxTiles, maxRows, words: at };
}

/** The plan offsets as the expert-matmul uniform fields. */
export function planUniforms(p: PlanLayout): Record<string, number> {
  return {
    off_header: p.header,
    off_offsets: p.offsets,
    off_kept: p.kept,
    off_tile_expert: p.tileExpert,
    off_tile_row: p.tileRow,
    off_row_key: p.rowKey,
  };
}

export { K_MAX };
