// Where every cell of the layers × experts grid goes: a pure function of the model config (no three.js, no GPU).
//
// World units: experts run along +x (expert 0 on the left), layers along −z (layer 0 at the front, nearest the
// default camera), heights along +y. Each MoE layer is a row of routed-expert cells, preceded on the left by one
// shared-expert cell where the model has shared experts. A dense layer (no router) is one slab spanning the row;
// with `collapseDense` its row is made thin so deep models with a few dense layers stay compact.
import type { MoeConfig } from '../model/config';

/** What an instance of the grid stands for. */
export const CELL_KIND = { routed: 0, shared: 1, dense: 2 } as const;
export type CellKind = (typeof CELL_KIND)[keyof typeof CELL_KIND];

/** Distance between neighbouring expert columns, world units. */
export const EXPERT_PITCH = 1;
/** Fraction of the pitch a cell's footprint covers (the rest is the gap between cells). */
export const CELL_FILL = 0.78;
/** Distance between layer rows, world units. */
export const LAYER_PITCH = 1.5;
/** Row pitch of a dense layer when dense layers are collapsed. */
export const COLLAPSED_PITCH = 0.45;

export interface LayoutOptions {
  collapseDense: boolean;
  /** Experts per column (1: one column per expert). A grouped row has one bar per group of this many experts. */
  groupSize?: number;
  /** With groups: the group opened (its experts one per column, the other groups not drawn), or null for all groups. */
  drill?: number | null;
}

export const DEFAULT_LAYOUT_OPTIONS: LayoutOptions = { collapseDense: true };

/** Models with more routed experts than this are drawn in groups of GROUP_SIZE (16 bars a row), opened one at a time. */
export const GROUP_ABOVE = 64;
export const GROUP_SIZE = 16;

/** Experts per column for a model with `numExperts` experts. */
export const groupSizeFor = (numExperts: number): number => (numExperts > GROUP_ABOVE ? GROUP_SIZE : 1);

export interface GridLayout {
  numLayers: number;
  numExperts: number;
  /** Instances drawn in total. */
  count: number;
  /** [count] layer of each instance. */
  layer: Uint32Array;
  /** [count] routed expert id (with groups: the column's first expert), or −1 for shared-expert and dense-layer instances. */
  expert: Int32Array;
  /** Routed columns per MoE row. */
  columns: number;
  /** [columns + 1] column c covers experts [colFirst[c], colFirst[c + 1]). */
  colFirst: Uint32Array;
  /** Experts per group (1: not grouped) and the opened group (null: all groups side by side). */
  groupSize: number;
  drill: number | null;
  /** [count] CELL_KIND of each instance. */
  kind: Uint8Array;
  /** [count, 4] footprint of each instance: centre x, centre z, width (x), depth (z). World units. */
  rect: Float32Array;
  /** [layers] instance index of the layer's first column (its columns are contiguous), or −1 for a dense layer. */
  firstExpert: Int32Array;
  /** [layers] instance index of the layer's shared-expert cell, or −1. */
  sharedCell: Int32Array;
  /** [layers] instance index of the dense-layer slab, or −1. */
  denseCell: Int32Array;
  /** [layers] z of each row's centre line. */
  rowZ: Float32Array;
  /** x of column c's centre is x0 + c · pitch. */
  x0: number;
  /** Distance between columns: EXPERT_PITCH, or with groups numExperts / columns (a row keeps its ungrouped width). */
  pitch: number;
  bounds: { minX: number; maxX: number; minZ: number; maxZ: number };
}

/** The grid of a model: one instance per routed expert of each MoE layer, per shared expert cell, per dense layer. */
export function gridLayout(config: Pick<MoeConfig, 'numLayers' | 'numExperts' | 'moeLayers' | 'sharedExpert'>,
  options: LayoutOptions = DEFAULT_LAYOUT_OPTIONS): GridLayout {
  const L = config.numLayers;
  const E = config.numExperts;
  if (!(L > 0) || !(E > 0)) throw new Error(`gridLayout: numLayers (${L}) and numExperts (${E}) must be positive`);
  if (config.moeLayers.length !== L) {
    throw new Error(`gridLayout: moeLayers has ${config.moeLayers.length} entries for ${L} layers`);
  }
  const hasShared = config.sharedExpert !== null;
  const groupSize = Math.max(1, Math.floor(options.groupSize ?? 1));
  const groups = Math.ceil(E / groupSize);
  const drill = groupSize > 1 && options.drill != null && options.drill >= 0 && options.drill < groups ? options.drill : null;
  const colFirst =
    groupSize === 1 ? Uint32Array.from({ length: E + 1 }, (_, c) => c)
    : drill === null ? Uint32Array.from({ length: groups + 1 }, (_, c) => Math.min(E, c * groupSize))
    : Uint32Array.from({ length: Math.min(E, (drill + 1) * groupSize) - drill * groupSize + 1 }, (_, c) => drill * groupSize + c);
  const C = colFirst.length - 1;
  let count = 0;
  for (const moe of config.moeLayers) count += moe ? C + (hasShared ? 1 : 0) : 1;

  const layer = new Uint32Array(count);
  const expert = new Int32Array(count).fill(-1);
  const kind = new Uint8Array(count);
  const rect = new Float32Array(count * 4);
  const firstExpert = new Int32Array(L).fill(-1);
  const sharedCell = new Int32Array(L).fill(-1);
  const denseCell = new Int32Array(L).fill(-1);
  const rowZ = new Float32Array(L);

  const pitch = groupSize > 1 ? E / C : EXPERT_PITCH;
  const x0 = -((C - 1) * pitch) / 2;
  const cell = EXPERT_PITCH * CELL_FILL;
  const width = pitch * CELL_FILL;
  const rowWidth = (C - 1) * pitch + width;
  const sharedX = x0 - width / 2 - (1.5 * EXPERT_PITCH - cell);

  // Row centres: walk from layer 0 (front, z = 0) backwards; each row takes half its pitch on either side.
  const pitchOf = (l: number) => (config.moeLayers[l] || !options.collapseDense ? LAYER_PITCH : COLLAPSED_PITCH);
  let z = 0;
  for (let l = 0; l < L; l++) {
    if (l > 0) z -= (pitchOf(l - 1) + pitchOf(l)) / 2;
    rowZ[l] = z;
  }

  let i = 0;
  const put = (l: number, k: CellKind, e: number, x: number, w: number, d: number) => {
    layer[i] = l;
    kind[i] = k;
    expert[i] = e;
    rect.set([x, rowZ[l], w, d], i * 4);
    return i++;
  };
  for (let l = 0; l < L; l++) {
    // Expert cells are square; a dense slab takes 60% of its row's pitch.
    const depth = config.moeLayers[l] ? cell : pitchOf(l) * 0.6;
    if (config.moeLayers[l]) {
      if (hasShared) sharedCell[l] = put(l, CELL_KIND.shared, -1, sharedX, cell, depth);
      firstExpert[l] = i;
      for (let c = 0; c < C; c++) put(l, CELL_KIND.routed, colFirst[c], x0 + c * pitch, width, depth);
    } else {
      denseCell[l] = put(l, CELL_KIND.dense, -1, 0, rowWidth, depth);
    }
  }

  const minX = hasShared ? sharedX - cell / 2 : x0 - width / 2;
  const maxX = x0 + (C - 1) * pitch + width / 2;
  const bounds = { minX, maxX, minZ: rowZ[L - 1] - pitchOf(L - 1) / 2, maxZ: pitchOf(0) / 2 };
  return {
    numLayers: L, numExperts: E, count, layer, expert, columns: C, colFirst, groupSize, drill, kind, rect, firstExpert, sharedCell,
    denseCell, rowZ, x0, pitch, bounds,
  };
}

/** Lowest drawn bar height (world units): cells that took no tokens still show as flat tiles. */
export const MIN_BAR_HEIGHT = 0.04;

/**
 * The nearest bar a ray hits, or −1: each instance is the box over its footprint from y = 0 to
 * max(heights[i], MIN_BAR_HEIGHT), as the grid draws it; instances of hidden layers are skipped. Slab test per box.
 */
export function pickBar(
  g: GridLayout,
  heights: ArrayLike<number>,
  visible: readonly boolean[],
  origin: readonly [number, number, number],
  dir: readonly [number, number, number],
): number {
  let best = -1;
  let bestT = Infinity;
  for (let i = 0; i < g.count; i++) {
    if (!visible[g.layer[i]]) continue;
    const cx = g.rect[i * 4], cz = g.rect[i * 4 + 1], hw = g.rect[i * 4 + 2] / 2, hd = g.rect[i * 4 + 3] / 2;
    const lo = [cx - hw, 0, cz - hd];
    const hi = [cx + hw, Math.max(heights[i] ?? 0, MIN_BAR_HEIGHT), cz + hd];
    let near = -Infinity;
    let far = Infinity;
    for (let a = 0; a < 3 && near <= far; a++) {
      if (Math.abs(dir[a]) < 1e-12) {
        if (origin[a] < lo[a] || origin[a] > hi[a]) far = -Infinity;
        continue;
      }
      const t1 = (lo[a] - origin[a]) / dir[a];
      const t2 = (hi[a] - origin[a]) / dir[a];
      near = Math.max(near, Math.min(t1, t2));
      far = Math.min(far, Math.max(t1, t2));
    }
    if (near <= far && far >= 0 && Math.max(near, 0) < bestT) {
      bestT = Math.max(near, 0);
      best = i;
    }
  }
  return best;
}

/** Column of a routed expert (its group's, when grouped), or −1 when the expert is not drawn (another group is open). */
export function columnOf(g: GridLayout, expert: number): number {
  if (expert < 0 || expert >= g.numExperts) return -1;
  const lo = g.colFirst[0];
  if (expert < lo || expert >= g.colFirst[g.columns]) return -1;
  return g.drill === null ? Math.floor(expert / g.groupSize) : expert - lo;
}

/** Instance index of the bar that draws (layer, routed expert), or −1 if the layer is dense or the expert not drawn. */
export function instanceOf(g: GridLayout, layer: number, expert: number): number {
  if (layer < 0 || layer >= g.numLayers) return -1;
  const first = g.firstExpert[layer];
  const c = columnOf(g, expert);
  return first < 0 || c < 0 ? -1 : first + c;
}

/** Whether an instance is a bar of several experts (a group, not yet opened). */
export const isGroupBar = (g: GridLayout, i: number): boolean => g.kind[i] === CELL_KIND.routed && g.drill === null && g.groupSize > 1;

/** Which layers are drawn: all but the hidden ones, or only `solo` when it is set. */
export function layerVisibility(numLayers: number, hidden: ReadonlySet<number>, solo: number | null): boolean[] {
  const out: boolean[] = [];
  for (let l = 0; l < numLayers; l++) out.push(solo !== null && solo >= 0 ? l === solo : !hidden.has(l));
  return out;
}

/** Tallest bar the framing leaves room for (world units; load bars cap at 3 at height scale 1). */
const FRAMED_HEIGHT = 3;
/** Half the screen (in normalised device units) the grid may fill, leaving a margin for the axis labels. */
const FILL = 0.86;

/**
 * A camera position and target that frame the whole grid, every model the same way round: experts run across the
 * screen, layer 0 at the front and later layers further back (up the screen). Small grids are seen at 48° from the
 * floor; large or deep ones steeper (up to 72°), so that they read like a map and rows stay apart. The distance is
 * the least at which all corners of the grid's box (floor to FRAMED_HEIGHT) project inside FILL of the screen.
 */
export function framingView(g: GridLayout, verticalFovDeg: number, aspect: number): {
  position: [number, number, number];
  target: [number, number, number];
  elevationDeg: number;
} {
  const { minX, maxX, minZ, maxZ } = g.bounds;
  const cx = (minX + maxX) / 2;
  const cz = (minZ + maxZ) / 2;
  const width = maxX - minX;
  const depth = maxZ - minZ;
  const elevationDeg = Math.min(72, Math.max(48, 48 + 24 * Math.min(1, Math.max(depth / Math.max(width, 1) - 0.6, (g.count - 512) / 8000))));
  const elev = (elevationDeg * Math.PI) / 180;
  const tanY = Math.tan((verticalFovDeg * Math.PI) / 360);
  const tanX = tanY * aspect;
  // Camera looks at the centre from direction (0, sin e, cos e); its up vector is (0, cos e, −sin e).
  const corners: [number, number, number][] = [];
  for (const x of [minX, maxX]) for (const y of [0, FRAMED_HEIGHT]) for (const z of [minZ, maxZ]) corners.push([x - cx, y, z - cz]);
  const fits = (dist: number) =>
    corners.every(([x, y, z]) => {
      const forward = dist - (y * Math.sin(elev) + z * Math.cos(elev));
      const up = y * Math.cos(elev) - z * Math.sin(elev);
      return forward > 0 && Math.abs(x / (forward * tanX)) <= FILL && Math.abs(up / (forward * tanY)) <= FILL;
    });
  let lo = 1;
  let hi = 4;
  while (!fits(hi)) hi *= 2;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) hi = mid;
    else lo = mid;
  }
  return {
    position: [cx, hi * Math.sin(elev), cz + hi * Math.cos(elev)],
    target: [cx, 0, cz],
    elevationDeg,
  };
}
