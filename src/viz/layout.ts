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
}

export const DEFAULT_LAYOUT_OPTIONS: LayoutOptions = { collapseDense: true };

export interface GridLayout {
  numLayers: number;
  numExperts: number;
  /** Instances drawn in total. */
  count: number;
  /** [count] layer of each instance. */
  layer: Uint32Array;
  /** [count] routed expert id, or −1 for shared-expert and dense-layer instances. */
  expert: Int32Array;
  /** [count] CELL_KIND of each instance. */
  kind: Uint8Array;
  /** [count, 4] footprint of each instance: centre x, centre z, width (x), depth (z). World units. */
  rect: Float32Array;
  /** [layers] instance index of the layer's expert 0 (its experts are contiguous), or −1 for a dense layer. */
  firstExpert: Int32Array;
  /** [layers] instance index of the layer's shared-expert cell, or −1. */
  sharedCell: Int32Array;
  /** [layers] instance index of the dense-layer slab, or −1. */
  denseCell: Int32Array;
  /** [layers] z of each row's centre line. */
  rowZ: Float32Array;
  /** x of expert e's column centre is x0 + e · EXPERT_PITCH. */
  x0: number;
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
  let count = 0;
  for (const moe of config.moeLayers) count += moe ? E + (hasShared ? 1 : 0) : 1;

  const layer = new Uint32Array(count);
  const expert = new Int32Array(count).fill(-1);
  const kind = new Uint8Array(count);
  const rect = new Float32Array(count * 4);
  const firstExpert = new Int32Array(L).fill(-1);
  const sharedCell = new Int32Array(L).fill(-1);
  const denseCell = new Int32Array(L).fill(-1);
  const rowZ = new Float32Array(L);

  const x0 = -((E - 1) * EXPERT_PITCH) / 2;
  const cell = EXPERT_PITCH * CELL_FILL;
  const rowWidth = (E - 1) * EXPERT_PITCH + cell;
  const sharedX = x0 - 1.5 * EXPERT_PITCH;

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
      for (let e = 0; e < E; e++) put(l, CELL_KIND.routed, e, x0 + e * EXPERT_PITCH, cell, depth);
    } else {
      denseCell[l] = put(l, CELL_KIND.dense, -1, 0, rowWidth, depth);
    }
  }

  const minX = (hasShared ? sharedX : x0) - cell / 2;
  const maxX = x0 + (E - 1) * EXPERT_PITCH + cell / 2;
  const bounds = { minX, maxX, minZ: rowZ[L - 1] - pitchOf(L - 1) / 2, maxZ: pitchOf(0) / 2 };
  return { numLayers: L, numExperts: E, count, layer, expert, kind, rect, firstExpert, sharedCell, denseCell, rowZ, x0, bounds };
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

/** Instance index of (layer, routed expert), or −1 if the layer is dense or the expert out of range. */
export function instanceOf(g: GridLayout, layer: number, expert: number): number {
  if (layer < 0 || layer >= g.numLayers || expert < 0 || expert >= g.numExperts) return -1;
  const first = g.firstExpert[layer];
  return first < 0 ? -1 : first + expert;
}

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
