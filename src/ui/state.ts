// The dashboard's one source of truth for what the user chose: the params (routing what-ifs, view, playback), hidden
// layers, the ablation mask, the selected token and cell, the hovered cell and where the text came from. Modules
// never keep their own copies: they read this object and subscribe to its changes, each told what kind of change it
// was so it redraws only what depends on it.
import type { RoutingPolicy } from '../engine/session-api';
import { groupSizeFor, layerVisibility, type LayoutOptions } from '../viz/layout';
import type { ViewSettings } from '../viz/scene';
import { defaultParams, sanitizeParams, toPolicy, type Params } from './params';
import type { UrlState } from './url-state';

/**
 * routing: the engine's policy changed (params or ablations); view: how bars are drawn; grid: the layout itself;
 * layers: hidden / solo; focus: the focus layer; playback: stepping params; selection: token or cell; hover; model:
 * a new model is in place (everything is new); layout: the grid was rebuilt for the same model (after 'grid').
 */
export type ChangeKind = 'routing' | 'view' | 'grid' | 'layers' | 'focus' | 'playback' | 'selection' | 'hover' | 'model' | 'layout';

const KIND_OF: Record<keyof Params, ChangeKind> = {
  topK: 'routing',
  noiseStd: 'routing',
  noiseSeed: 'routing',
  temperature: 'routing',
  capacityFactor: 'routing',
  overflow: 'routing',
  mode: 'view',
  colormap: 'view',
  heightScale: 'view',
  collapseDense: 'grid',
  groupExperts: 'grid',
  soloLayer: 'layers',
  focusLayer: 'focus',
  stepMode: 'playback',
  speed: 'playback',
  sampleTemperature: 'playback',
  topP: 'playback',
  sampleSeed: 'playback',
};

/** Where the stepped text came from: a sample of the model (its index) or typed text. */
export interface TextSource {
  sample: number | null;
  text: string | null;
}

export type StateListener = (kind: ChangeKind, key?: keyof Params) => void;

export class DashboardState {
  readonly params: Params = defaultParams();
  hidden = new Set<number>();
  /** u8 [layers, experts]: 1 = expert ablated. */
  ablated = new Uint8Array(0);
  selectedToken: number | null = null;
  /** Grid instance index of the selected / hovered cell, or −1. */
  selectedCell = -1;
  hoveredCell = -1;
  /** The expert group opened in the grid (models drawn in groups), or null for all groups. */
  drill: number | null = null;
  text: TextSource = { sample: 0, text: null };
  numLayers = 0;
  numExperts = 0;
  private readonly listeners = new Set<StateListener>();

  subscribe(fn: StateListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(kind: ChangeKind, key?: keyof Params): void {
    for (const fn of this.listeners) fn(kind, key);
  }

  /** A new model: params from the link (or defaults), nothing selected or ablated. Listeners hear 'model' later. */
  reset(numLayers: number, numExperts: number, restore: Pick<UrlState, 'params' | 'hiddenLayers'>): void {
    this.numLayers = numLayers;
    this.numExperts = numExperts;
    Object.assign(this.params, sanitizeParams({ ...restore.params }, numLayers));
    this.hidden = new Set(restore.hiddenLayers);
    this.ablated = new Uint8Array(numLayers * numExperts);
    this.selectedToken = null;
    this.selectedCell = -1;
    this.hoveredCell = -1;
    this.drill = null;
  }

  /** Open an expert group of the grid (null: back to all groups); the grid is rebuilt. */
  setDrill(group: number | null): void {
    if (group === this.drill) return;
    this.drill = group;
    this.emit('grid');
  }

  /** How the grid is laid out: dense rows collapsed or not, experts grouped (large models) and the group opened. */
  layoutOptions(): LayoutOptions {
    const groupSize = this.params.groupExperts ? groupSizeFor(this.numExperts) : 1;
    return { collapseDense: this.params.collapseDense, groupSize, drill: groupSize > 1 ? this.drill : null };
  }

  /** Tell listeners a model is in place (after every module has been given it). */
  modelReady(): void {
    this.emit('model');
  }

  /** Tell listeners the grid was rebuilt (new instance indices, same model). */
  layoutReady(): void {
    this.selectedCell = -1;
    this.hoveredCell = -1;
    this.emit('layout');
  }

  setParam<K extends keyof Params>(key: K, value: Params[K]): void {
    this.params[key] = value;
    this.paramChanged(key);
  }

  /** A param was changed in place (lil-gui writes the object itself). */
  paramChanged(key: keyof Params): void {
    this.emit(KIND_OF[key], key);
  }

  setLayerShown(layer: number, shown: boolean): void {
    if (shown) this.hidden.delete(layer);
    else this.hidden.add(layer);
    this.emit('layers');
  }

  toggleAblation(layer: number, expert: number): void {
    const i = layer * this.numExperts + expert;
    this.ablated[i] = this.ablated[i] ? 0 : 1;
    this.emit('routing');
  }

  clearAblations(): void {
    this.ablated.fill(0);
    this.emit('routing');
  }

  get ablatedCount(): number {
    return this.ablated.reduce((s, v) => s + v, 0);
  }

  selectToken(position: number | null): void {
    this.selectedToken = position;
    this.emit('selection');
  }

  selectCell(instance: number): void {
    this.selectedCell = instance;
    this.emit('selection');
  }

  hover(instance: number): void {
    if (instance === this.hoveredCell) return;
    this.hoveredCell = instance;
    this.emit('hover');
  }

  /** Which layers are drawn (hidden ones and, with a solo layer, all others are not). */
  visibility(): boolean[] {
    return layerVisibility(this.numLayers, this.hidden, this.params.soloLayer);
  }

  /** True when no what-if is on: the model routes as trained (its k, no noise, temperature 1, no capacity, no ablation). */
  isOriginalPolicy(modelTopK: number): boolean {
    const p = this.params;
    return (p.topK === 0 || p.topK === modelTopK) && p.noiseStd === 0 && p.temperature === 1 && p.capacityFactor === 0 && this.ablatedCount === 0;
  }

  /** The what-ifs in force, in words ('k = 3, router temperature 4'), or '' for the original policy. */
  whatIfLabel(modelTopK: number): string {
    const p = this.params;
    const parts: string[] = [];
    if (p.topK > 0 && p.topK !== modelTopK) parts.push(`k = ${p.topK}`);
    if (p.noiseStd > 0) parts.push(`noise σ ${p.noiseStd} (seed ${p.noiseSeed})`);
    if (p.temperature !== 1) parts.push(`router temperature ${p.temperature}`);
    if (p.capacityFactor > 0) parts.push(`capacity factor ${p.capacityFactor}, ${p.overflow === 'drop' ? 'overflow dropped' : 'overflow re-routed'}`);
    const n = this.ablatedCount;
    if (n > 0) parts.push(`${n} expert${n === 1 ? '' : 's'} ablated`);
    return parts.join(', ');
  }

  policy(modelTopK: number): RoutingPolicy {
    return toPolicy(this.params, modelTopK, this.ablated);
  }

  view(): ViewSettings {
    return { mode: this.params.mode, heightScale: this.params.heightScale, maxRatio: 6, colormap: this.params.colormap };
  }
}
