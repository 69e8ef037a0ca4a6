// config.json's RoPE scaling → RopeScaling (src/model/rope.ts), with transformers' defaults and precedence:
// v4 writes `rope_scaling` {type | rope_type, factor, …}, v5 `rope_parameters` {rope_type, rope_theta, …}; a
// rope_scaling object wins over rope_parameters (PreTrainedConfig.convert_rope_params_to_dict). YaRN and llama3 take
// original_max_position_embeddings from the top level of the config first (Phi-3 style), then from the parameters,
// then max_position_embeddings. Types the engine does not implement come back as a reason, not an error.
import type { RopeScaling } from '../model/rope';
import { ModelFileError, field } from './errors';

export type RopeParse = { scaling: RopeScaling } | { unsupported: string };

export function parseRopeScaling(json: Record<string, unknown>, source: string, maxPositions: number): RopeParse {
  const fromV4 = json.rope_scaling !== undefined && json.rope_scaling !== null;
  const key = fromV4 ? 'rope_scaling' : 'rope_parameters';
  const raw = json[key];
  if (raw === undefined || raw === null) return { scaling: { type: 'default' } };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ModelFileError(source, field(key), 'is not an object');
  const p = raw as Record<string, unknown>;
  const fail = (name: string, detail: string): never => {
    throw new ModelFileError(source, field(`${key}.${name}`), detail);
  };
  const num = (name: string, fallback?: number, positive = true): number => {
    const v = p[name];
    if (v === undefined || v === null) {
      if (fallback === undefined) fail(name, 'missing');
      return fallback!;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive ? v <= 0 : v < 0)) {
      fail(name, `expected a ${positive ? 'positive' : 'non-negative'} number, found ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const optional = (name: string): number | null => (p[name] === undefined || p[name] === null ? null : num(name, undefined, false));
  const type = String(p.rope_type ?? p.type ?? 'default');
  const partial = p.partial_rotary_factor ?? json.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    return { unsupported: `partial_rotary_factor ${JSON.stringify(partial)} (rotary embedding on part of the head) is not implemented` };
  }
  const topOriginal = json.original_max_position_embeddings;
  const original = (): number => {
    if (typeof topOriginal === 'number' && Number.isSafeInteger(topOriginal) && topOriginal > 0) return topOriginal;
    return num('original_max_position_embeddings', maxPositions);
  };
  switch (type) {
    case 'default':
      return { scaling: { type: 'default' } };
    case 'linear':
      return { scaling: { type: 'linear', factor: num('factor') } };
    case 'dynamic':
      return { scaling: { type: 'dynamic', factor: num('factor'), maxPositions } };
    case 'yarn': {
      const originalMaxPositions = original();
      const truncate = p.truncate ?? true;
      if (typeof truncate !== 'boolean') fail('truncate', `expected true or false, found ${JSON.stringify(truncate)}`);
      return {
        scaling: {
          type: 'yarn',
          // transformers: a missing factor is max_position_embeddings / original_max_position_embeddings.
          factor: num('factor', maxPositions / originalMaxPositions),
          originalMaxPositions,
          // `get("beta_fast") or 32`: 0 counts as missing too.
          betaFast: optional('beta_fast') || 32,
          betaSlow: optional('beta_slow') || 1,
          attentionFactor: optional('attention_factor'),
          mscale: optional('mscale'),
          mscaleAllDim: optional('mscale_all_dim'),
          truncate: truncate as boolean,
        },
      };
    }
    case 'llama3': {
      const scaling = {
        type: 'llama3' as const,
        factor: num('factor'),
        lowFreqFactor: num('low_freq_factor'),
        highFreqFactor: num('high_freq_factor'),
        originalMaxPositions: original(),
      };
      if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
        fail('high_freq_factor', `${scaling.highFreqFactor} must exceed low_freq_factor (${scaling.lowFreqFactor})`);
      }
      return { scaling };
    }
    default:
      return { unsupported: `RoPE scaling "${type}" is not implemented (default, linear, dynamic, yarn, llama3)` };
  }
}
