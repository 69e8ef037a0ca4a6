// The causal expert atlas's GPU side: the same text run once as the model is, then once per (layer, expert) with that
// expert ablated (the routing policy's mask: its router never chooses it, the token goes to its next choices). Each
// run is the whole text teacher-forced in steps of the decoder's maxTokensPerStep; its logits come back for the
// caller to score (src/analysis/atlas.ts). The session's policy and text are restored afterwards.
import type { Session } from '../model/session';
import { effectiveTopK } from '../routing/policy';

export interface AblationCell {
  layer: number;
  expert: number;
}

export interface SweepOptions {
  /** Cells to ablate; default every expert of every MoE layer. */
  cells?: AblationCell[];
  /** Called with the unablated run first (cell null), then each cell's run; logits [ids.length, vocab]. */
  onRun: (cell: AblationCell | null, logits: Float32Array) => void | Promise<void>;
}

/** Every expert of every MoE layer, layer by layer. */
export function allCells(session: Session): AblationCell[] {
  const c = session.config;
  const cells: AblationCell[] = [];
  c.moeLayers.forEach((moe, layer) => {
    if (moe) for (let expert = 0; expert < c.numExperts; expert++) cells.push({ layer, expert });
  });
  return cells;
}

export async function ablationSweep(session: Session, ids: number[], options: SweepOptions): Promise<void> {
  const c = session.config;
  const E = c.numExperts;
  const base = session.getPolicy();
  const kept = [...session.tokens];
  const cells = options.cells ?? allCells(session);
  const k = effectiveTopK(c, base);
  for (const cell of cells) {
    if (!c.moeLayers[cell.layer] || cell.expert < 0 || cell.expert >= E) {
      throw new RangeError(`ablation sweep: layer ${cell.layer} expert ${cell.expert} is not a routed expert of this model`);
    }
    const live = E - base.ablated.subarray(cell.layer * E, (cell.layer + 1) * E).reduce((a, b) => a + b, 0);
    if (live - 1 < k) throw new RangeError(`ablation sweep: layer ${cell.layer} would keep ${live - 1} experts for top-${k}`);
  }
  try {
    for (const cell of [null, ...cells]) {
      const ablated = new Uint8Array(base.ablated);
      if (cell) ablated[cell.layer * E + cell.expert] = 1;
      session.setPolicy({ ...base, ablated });
      await session.reset();
      await options.onRun(cell, await session.feedWithLogits(ids));
    }
  } finally {
    session.setPolicy(base);
    await session.reset();
    if (kept.length) await session.feed(kept);
  }
}
