// "Align experts by weights" for compare mode: the other checkpoint's experts are matched to the current model's,
// layer by layer, by the Hungarian matching of src/analysis/alignment.ts (cosine of W_down·W_up, a similarity that
// ignores how an expert's hidden units are ordered or scaled), and its routing is compared through that matching:
// an expert permuted together with its router row computes the same function, so relabelling the other model's
// expert ids by the matching is the same as permuting its experts before comparing.
import { alignLayer, type LayerAlignment } from '../analysis/alignment';
import type { LoadedModel } from './models';

export interface CheckpointAlignment {
  /** Per layer (null: dense): the alignment, match[e] = the other model's expert matched to expert e. */
  layers: (LayerAlignment | null)[];
  /** Per layer: the current model's expert each of the other model's experts stands for (the inverse matching). */
  relabel: (number[] | null)[];
  /** Experts whose match is not their own index. */
  moved: number;
  /** Mean cosine of the matched pairs and of all unmatched pairs, over the MoE layers. */
  meanMatched: number;
  meanUnmatched: number;
}

const concat = (parts: Float32Array[]) => {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
};

/** Matches `other`'s experts to `model`'s from their weights (read and decoded on the CPU). */
export async function alignCheckpoints(model: LoadedModel, other: LoadedModel): Promise<CheckpointAlignment> {
  if (!model.weights || !other.weights) throw new Error('aligning experts needs both checkpoints’ weights (safetensors folders)');
  const c = model.config;
  const layers: (LayerAlignment | null)[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    if (!c.moeLayers[l]) {
      layers.push(null);
      continue;
    }
    const [a, b] = await Promise.all([model.weights.read(l), other.weights.read(l)]);
    const experts = (w: typeof a) => ({
      experts: c.numExperts, hidden: c.hiddenSize, intermediate: c.moeIntermediateSize, gateUp: concat(w.gateUp), down: concat(w.down),
    });
    layers.push(alignLayer(experts(a), experts(b)));
  }
  const live = layers.filter((x): x is LayerAlignment => x !== null);
  const relabel = layers.map((x) => {
    if (!x) return null;
    const inverse = new Array<number>(x.match.length);
    x.match.forEach((j, i) => (inverse[j] = i));
    return inverse;
  });
  const mean = (v: number[]) => (v.length ? v.reduce((s, x) => s + x, 0) / v.length : 0);
  return {
    layers,
    relabel,
    moved: live.reduce((n, x) => n + x.match.filter((j, i) => j !== i).length, 0),
    meanMatched: mean(live.flatMap((x) => x.matched)),
    meanUnmatched: mean(live.map((x) => x.meanUnmatched)),
  };
}
