import { describe, expect, it } from 'vitest';
import {
  CELL_KIND,
  EXPERT_PITCH,
  framingView,
  gridLayout,
  instanceOf,
  layerVisibility,
  pickCell,
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
    for (const cfg of [moeOnly(5, 9), withDenseAndShared]) {
      for (const collapseDense of [false, true]) {
        const g = gridLayout(cfg, { collapseDense });
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

describe('pickCell', () => {
  it('finds the instance under every cell centre and nothing in the gaps', () => {
    const g = gridLayout(withDenseAndShared);
    for (let i = 0; i < g.count; i++) {
      expect(pickCell(g, g.rect[i * 4], g.rect[i * 4 + 1])).toBe(i);
    }
    const first = instanceOf(g, 4, 3);
    const gapX = g.rect[first * 4] + EXPERT_PITCH / 2;
    expect(pickCell(g, gapX, g.rect[first * 4 + 1])).toBe(-1);
    expect(pickCell(g, g.bounds.maxX + 5, 0)).toBe(-1);
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
  it('looks at the grid centre from the front and above, further away for bigger grids', () => {
    const small = gridLayout(moeOnly(4, 8));
    const big = gridLayout(moeOnly(64, 256));
    const a = framingView(small, 45, 16 / 9);
    const b = framingView(big, 45, 16 / 9);
    expect(a.position[1]).toBeGreaterThan(0);
    expect(a.position[2]).toBeGreaterThan(a.target[2]);
    const dist = (v: typeof a) => Math.hypot(...v.position.map((p, i) => p - v.target[i]));
    expect(dist(b)).toBeGreaterThan(dist(a) * 5);
    expect(a.side).toBe(false);
  });

  it('looks from the side at a grid with many layers and few experts, so layers run across the screen', () => {
    const deep = gridLayout(moeOnly(32, 8));
    const v = framingView(deep, 40, 1.5);
    expect(v.side).toBe(true);
    expect(v.position[0] - v.target[0]).toBeGreaterThan(Math.abs(v.position[2] - v.target[2]));
  });
});
