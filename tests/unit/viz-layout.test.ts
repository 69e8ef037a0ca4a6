import { describe, expect, it } from 'vitest';
import {
  CELL_KIND,
  EXPERT_PITCH,
  framingView,
  gridLayout,
  instanceOf,
  layerVisibility,
  pickBar,
} from '../../src/viz/layout';

const moeOnly = (layers: number, experts: number) => ({
  numLayers: layers,
  numExperts: experts,
  moeLayers: Array<boolean>(layers).fill(true),
  sharedExpert: null,
});

// DeepSeek-V3-like: 3 dense layers then MoE with one shared expert.
const withDenseAndShared = {
  numLayers: 8,
  numExperts: 16,
  moeLayers: [false, false, false, true, true, true, true, true],
  sharedExpert: { intermediateSize: 2048, gated: false },
};

describe('gridLayout', () => {
  it('puts one instance per (layer, expert) for an all-MoE model, experts contiguous per layer', () => {
    for (const [L, E] of [[4, 8], [1, 1], [7, 33], [64, 256]] as const) {
      const g = gridLayout(moeOnly(L, E));
      expect(g.count).toBe(L * E);
      for (let l = 0; l < L; l++) {
        expect(g.firstExpert[l]).toBe(l * E);
        expect(g.sharedCell[l]).toBe(-1);
        expect(g.denseCell[l]).toBe(-1);
        for (const e of [0, E - 1]) {
          const i = instanceOf(g, l, e);
          expect(g.layer[i]).toBe(l);
          expect(g.expert[i]).toBe(e);
          expect(g.kind[i]).toBe(CELL_KIND.routed);
        }
      }
    }
  });

  it('gives dense layers one slab and MoE layers a shared cell when the model has shared experts', () => {
    const g = gridLayout(withDenseAndShared);
    expect(g.count).toBe(3 + 5 * (16 + 1));
    for (let l = 0; l < 3; l++) {
      expect(g.firstExpert[l]).toBe(-1);
      expect(g.kind[g.denseCell[l]]).toBe(CELL_KIND.dense);
      expect(instanceOf(g, l, 0)).toBe(-1);
    }
    for (let l = 3; l < 8; l++) {
      expect(g.kind[g.sharedCell[l]]).toBe(CELL_KIND.shared);
      expect(g.expert[g.sharedCell[l]]).toBe(-1);
      expect(g.expert[instanceOf(g, l, 15)]).toBe(15);
    }
    // Shared cells sit left of expert 0.
    const s = g.sharedCell[5];
    expect(g.rect[s * 4]).toBeLessThan(g.rect[instanceOf(g, 5, 0) * 4]);
  });

  it('never overlaps two footprints and keeps every footprint inside the bounds', () => {
    const groupings = [{}, { groupSize: 4 }, { groupSize: 4, drill: 1 }, { groupSize: 4, drill: 2 }];
    for (const cfg of [moeOnly(5, 9), withDenseAndShared]) {
      for (const [collapseDense, grouping] of [false, true].flatMap((c) => groupings.map((g) => [c, g] as const))) {
        const g = gridLayout(cfg, { collapseDense, ...grouping });
        const boxes = Array.from({ length: g.count }, (_, i) => g.rect.subarray(i * 4, i * 4 + 4));
        for (const [x, z, w, d] of boxes) {
          expect(x - w / 2).toBeGreaterThanOrEqual(g.bounds.minX - 1e-6);
          expect(x + w / 2).toBeLessThanOrEqual(g.bounds.maxX + 1e-6);
          expect(z - d / 2).toBeGreaterThanOrEqual(g.bounds.minZ - 1e-6);
          expect(z + d / 2).toBeLessThanOrEqual(g.bounds.maxZ + 1e-6);
        }
        for (let a = 0; a < boxes.length; a++) {
          for (let b = a + 1; b < boxes.length; b++) {
            const [ax, az, aw, ad] = boxes[a];
            const [bx, bz, bw, bd] = boxes[b];
            const overlapX = Math.abs(ax - bx) < (aw + bw) / 2 - 1e-6;
            const overlapZ = Math.abs(az - bz) < (ad + bd) / 2 - 1e-6;
            expect(overlapX && overlapZ, `instances ${a} and ${b} overlap`).toBe(false);
          }
        }
      }
    }
  });

  it('draws experts in groups: one bar per group, or the opened group one expert a bar; each expert maps to its bar', () => {
    const g = gridLayout(moeOnly(3, 9), { collapseDense: true, groupSize: 4 });
    expect([...g.colFirst]).toEqual([0, 4, 8, 9]);
    expect(g.count).toBe(3 * 3);
    expect([...g.expert.subarray(0, 3)]).toEqual([0, 4, 8]);
    expect([0, 3, 4, 7, 8].map((e) => instanceOf(g, 2, e))).toEqual([6, 6, 7, 7, 8]);
    // A row keeps about its ungrouped width: three bars 3 units apart, each 3 × 0.78 wide, where nine experts stood.
    expect(g.pitch).toBe(3);
    expect(g.bounds.maxX - g.bounds.minX).toBeCloseTo(2 * 3 + 3 * 0.78, 5);
    const open = gridLayout(moeOnly(3, 9), { collapseDense: true, groupSize: 4, drill: 1 });
    expect([...open.colFirst]).toEqual([4, 5, 6, 7, 8]);
    expect([...open.expert.subarray(0, 4)]).toEqual([4, 5, 6, 7]);
    expect([3, 4, 7, 8].map((e) => instanceOf(open, 1, e))).toEqual([-1, 4, 7, -1]);
    // The last group may be short; a group past the end opens nothing (all groups again).
    expect([...gridLayout(moeOnly(1, 9), { collapseDense: true, groupSize: 4, drill: 2 }).colFirst]).toEqual([8, 9]);
    expect(gridLayout(moeOnly(1, 9), { collapseDense: true, groupSize: 4, drill: 3 }).drill).toBeNull();
  });

  it('orders layers front to back and collapses dense rows when asked', () => {
    const open = gridLayout(withDenseAndShared, { collapseDense: false });
    const shut = gridLayout(withDenseAndShared, { collapseDense: true });
    for (let l = 1; l < 8; l++) expect(open.rowZ[l]).toBeLessThan(open.rowZ[l - 1]);
    const depth = (g: typeof open) => g.bounds.maxZ - g.bounds.minZ;
    expect(depth(shut)).toBeLessThan(depth(open));
    // Collapsing changes only dense rows: MoE rows keep their spacing.
    expect(shut.rowZ[6] - shut.rowZ[7]).toBeCloseTo(open.rowZ[6] - open.rowZ[7]);
  });

  it('rejects inconsistent configs with a message naming the field', () => {
    expect(() => gridLayout({ ...moeOnly(2, 4), moeLayers: [true] })).toThrow(/moeLayers/);
    expect(() => gridLayout(moeOnly(0, 4))).toThrow(/numLayers/);
  });
});

describe('pickBar', () => {
  const g = gridLayout(withDenseAndShared);
  const flat = new Float32Array(g.count);
  const all = Array<boolean>(g.numLayers).fill(true);
  const down = [0, -1, 0] as const;

  it('straight down onto every cell centre finds that cell, and nothing in the gaps', () => {
    for (let i = 0; i < g.count; i++) expect(pickBar(g, flat, all, [g.rect[i * 4], 5, g.rect[i * 4 + 1]], down)).toBe(i);
    const first = instanceOf(g, 4, 3);
    expect(pickBar(g, flat, all, [g.rect[first * 4] + EXPERT_PITCH / 2, 5, g.rect[first * 4 + 1]], down)).toBe(-1);
  });

  it('a slanted ray through the top of a tall front bar picks that bar, not the cell behind it on the floor', () => {
    const front = instanceOf(g, 4, 3);
    const behind = instanceOf(g, 5, 3);
    const [x, z] = [g.rect[front * 4], g.rect[front * 4 + 1]];
    const heights = new Float32Array(g.count);
    heights[front] = 3;
    // From the front and above, through the tall bar's top (y = 2.5 over its centre) down to the floor of row 5.
    const origin = [x, 6, z + 2.1] as const;
    const dir = [0, -6, -3.6] as const;
    expect(pickBar(g, heights, all, origin, dir)).toBe(front);
    const floorZ = origin[2] + (dir[2] * origin[1]) / -dir[1];
    expect(Math.abs(floorZ - g.rect[behind * 4 + 1])).toBeLessThan(g.rect[behind * 4 + 3] / 2); // the old floor pick
    // With the front bar's layer hidden, the same ray goes on to the cell behind.
    const hidden = all.map((_, l) => l !== 4);
    expect(pickBar(g, heights, hidden, origin, dir)).toBe(behind);
  });
});

describe('layerVisibility', () => {
  it('hides the hidden layers, and solo shows exactly one', () => {
    expect(layerVisibility(4, new Set([1, 3]), null)).toEqual([true, false, true, false]);
    expect(layerVisibility(4, new Set([2]), 2)).toEqual([false, false, true, false]);
    expect(layerVisibility(3, new Set(), -1)).toEqual([true, true, true]);
  });
});

describe('framingView', () => {
  /** Normalised screen coordinates of a world point for a framing (the camera's own projection, written out). */
  const project = (v: ReturnType<typeof framingView>, fov: number, aspect: number, p: [number, number, number]) => {
    const d = v.position.map((c, i) => c - v.target[i]);
    const dist = Math.hypot(...d);
    const back = d.map((c) => c / dist);
    const right = [1, 0, 0];
    const up = [back[1] * right[2] - back[2] * right[1], back[2] * right[0] - back[0] * right[2], back[0] * right[1] - back[1] * right[0]];
    const rel = p.map((c, i) => c - v.position[i]);
    const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    const forward = -dot(rel, back);
    const t = Math.tan((fov * Math.PI) / 360);
    return { x: dot(rel, right) / (forward * t * aspect), y: dot(rel, up) / (forward * t) };
  };

  it.each([
    ['demo 6 × 8', moeOnly(6, 8)],
    ['Mixtral 32 × 8', moeOnly(32, 8)],
    ['dense and shared 8 × 16', withDenseAndShared],
    ['DeepSeek-V3 61 × 256', { ...withDenseAndShared, numLayers: 61, numExperts: 256, moeLayers: Array.from({ length: 61 }, (_, l) => l >= 3) }],
    ['94 × 128', moeOnly(94, 128)],
  ])('fits all of %s on screen, the same way round (layer 0 in front, experts across)', (_, config) => {
    const g = gridLayout(config);
    for (const aspect of [1.2, 16 / 9]) {
      const v = framingView(g, 40, aspect);
      const { minX, maxX, minZ, maxZ } = g.bounds;
      for (const x of [minX, maxX]) for (const z of [minZ, maxZ]) for (const y of [0, 3]) {
        const p = project(v, 40, aspect, [x, y, z]);
        expect(Math.abs(p.x)).toBeLessThanOrEqual(0.87);
        expect(Math.abs(p.y)).toBeLessThanOrEqual(0.87);
      }
      // Experts left to right, layer 0 below the last layer on screen.
      expect(project(v, 40, aspect, [maxX, 0, 0]).x).toBeGreaterThan(project(v, 40, aspect, [minX, 0, 0]).x);
      expect(project(v, 40, aspect, [0, 0, minZ]).y).toBeGreaterThan(project(v, 40, aspect, [0, 0, maxZ]).y);
    }
  });
});
