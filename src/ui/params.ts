// The dashboard's one typed params object: what lil-gui edits, what the URL carries, what the engine and the view
// are updated from. Keys are identifiers; human labels live in gui.ts (`.name()`).
import type { RoutingPolicy } from '../engine/session-api';
import { COLORMAP_NAMES, type ColormapName } from '../viz/colormaps';
import { VIEW_MODES, type ViewMode } from '../viz/instance-values';

export interface Params {
  // Routing what-ifs (sent to the engine as a RoutingPolicy; uniforms only, no pipeline rebuild).
  /** Experts per token; 0 keeps the model's own k. */
  topK: number;
  /** σ of Gaussian noise on router logits (noisy top-k); 0 = off. */
  noiseStd: number;
  noiseSeed: number;
  /** Router logits are divided by this; 1 = as trained. */
  temperature: number;
  /** Expert capacity factor; 0 = unlimited. */
  capacityFactor: number;
  overflow: 'drop' | 'reroute';

  // View.
  mode: ViewMode;
  colormap: ColormapName;
  /** Multiplies all bar heights. */
  heightScale: number;
  /** Draw dense (router-less) layers as thin rows. */
  collapseDense: boolean;
  /** Models with more than 64 experts: one bar per group of 16 experts, opened by a click. */
  groupExperts: boolean;
  /** Show only this layer; −1 = off. */
  soloLayer: number;
  /** The layer whose experts colour the token strip and fill the heatmap. */
  focusLayer: number;

  // Token stepping.
  stepMode: 'scan' | 'generate';
  /** Tokens per second while playing. */
  speed: number;
  /** Sampling for generate mode. */
  sampleTemperature: number;
  topP: number;
  sampleSeed: number;
}

export const DEFAULT_PARAMS: Readonly<Params> = Object.freeze({
  topK: 0,
  noiseStd: 0,
  noiseSeed: 1,
  temperature: 1,
  capacityFactor: 0,
  overflow: 'reroute',
  mode: 'load',
  colormap: 'viridis',
  heightScale: 1,
  collapseDense: true,
  groupExperts: true,
  soloLayer: -1,
  focusLayer: 0,
  stepMode: 'scan',
  speed: 4,
  sampleTemperature: 0.8,
  topP: 0.95,
  sampleSeed: 7,
});

export const OVERFLOW_POLICIES = ['drop', 'reroute'] as const;
export const STEP_MODES = ['scan', 'generate'] as const;

/** Upper bound of the k override (the engine's K_MAX). */
export const TOP_K_LIMIT = 8;

/** Ranges the GUI and URL parsing share: [min, max, step]. */
export const RANGES = {
  topK: [0, TOP_K_LIMIT, 1],
  noiseStd: [0, 4, 0.05],
  noiseSeed: [0, 1_000_000, 1],
  temperature: [0.1, 4, 0.05],
  capacityFactor: [0, 4, 0.05],
  heightScale: [0.1, 5, 0.1],
  speed: [0.1, 60, 0.1],
  sampleTemperature: [0, 2, 0.05],
  topP: [0.05, 1, 0.05],
  sampleSeed: [0, 1_000_000, 1],
} as const satisfies Partial<Record<keyof Params, readonly [number, number, number]>>;

export function defaultParams(): Params {
  return { ...DEFAULT_PARAMS };
}

/** The engine's routing policy for these params; `ablated` is the u8 [layers, experts] mask (1 = ablated). */
export function toPolicy(p: Params, modelTopK: number, ablated: Uint8Array): RoutingPolicy {
  return {
    topK: p.topK > 0 && p.topK !== modelTopK ? p.topK : null,
    noiseStd: p.noiseStd,
    noiseSeed: p.noiseSeed,
    temperature: p.temperature,
    capacityFactor: p.capacityFactor,
    overflow: p.overflow,
    ablated,
  };
}

/** Keep a params object valid: numbers within their ranges, enums among their values (used after URL parsing). */
export function sanitizeParams(p: Params, numLayers: number): Params {
  const out = { ...p };
  for (const [key, [lo, hi]] of Object.entries(RANGES) as [keyof typeof RANGES, readonly [number, number, number]][]) {
    const v = Number(out[key]);
    out[key] = (Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : DEFAULT_PARAMS[key]) as never;
  }
  out.topK = Math.round(out.topK);
  if (!VIEW_MODES.includes(out.mode)) out.mode = DEFAULT_PARAMS.mode;
  if (!COLORMAP_NAMES.includes(out.colormap)) out.colormap = DEFAULT_PARAMS.colormap;
  if (!OVERFLOW_POLICIES.includes(out.overflow)) out.overflow = DEFAULT_PARAMS.overflow;
  if (!STEP_MODES.includes(out.stepMode)) out.stepMode = DEFAULT_PARAMS.stepMode;
  out.collapseDense = Boolean(out.collapseDense);
  const layer = (v: number, min: number) => (Number.isInteger(v) && v >= min && v < numLayers ? v : min);
  out.soloLayer = layer(out.soloLayer, -1);
  out.focusLayer = layer(out.focusLayer, 0);
  return out;
}
