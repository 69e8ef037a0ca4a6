// Matching the experts of two checkpoints of one architecture, layer by layer, so that a comparison pairs experts
// that were only re-indexed. An MoE layer's experts can be permuted (with their router rows) without changing the
// model, so "expert 3" of one checkpoint need not be "expert 3" of another.
//
// Similarity: the cosine between the experts' linear parts M = W_down · W_up ([H, H]). Why this and not the raw
// weights: inside an expert the I hidden units are themselves interchangeable (permute the rows of W_gate and W_up
// with the columns of W_down), and a hidden unit's up row can be scaled by a with its down column scaled by 1/a;
// M is unchanged by both, while flattened weights are not. The cosine ignores the overall scale, which training
// (weight decay, learning-rate schedule) changes between checkpoints without changing which expert is which.
// The assignment maximising the summed similarity is solved exactly (Jonker–Volgenant, `linear-sum-assignment`).
import { linearSumAssignment } from 'linear-sum-assignment';

/** One layer's experts: gate/up [E, 2I, H] (rows 0..I-1 gate, I..2I-1 up) and down [E, H, I], as f32. */
export interface LayerExperts {
  experts: number;
  hidden: number;
  intermediate: number;
  gateUp: Float32Array;
  down: Float32Array;
}

/** W_down · W_up of expert e, [H, H] in float64. */
export function linearPart(x: LayerExperts, e: number): Float64Array {
  const { hidden: H, intermediate: I } = x;
  const m = new Float64Array(H * H);
  const up = e * 2 * I * H + I * H;
  const down = e * H * I;
  for (let r = 0; r < H; r++) {
    for (let j = 0; j < I; j++) {
      const d = x.down[down + r * I + j];
      if (d === 0) continue;
      const row = up + j * H;
      for (let c = 0; c < H; c++) m[r * H + c] += d * x.gateUp[row + c];
    }
  }
  return m;
}

function cosine(a: Float64Array, b: Float64Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}

export interface LayerAlignment {
  /** [E, E]: similarity[i][j] between expert i of A and expert j of B. */
  similarity: number[][];
  /** Expert of B matched to each expert of A. */
  match: number[];
  /** similarity of each matched pair, and the mean of the unmatched ones (how clearly the match stands out). */
  matched: number[];
  meanUnmatched: number;
}

export function alignLayer(a: LayerExperts, b: LayerExperts): LayerAlignment {
  if (a.experts !== b.experts || a.hidden !== b.hidden || a.intermediate !== b.intermediate) {
    throw new RangeError(`align: layers of ${a.experts}×${a.hidden}×${a.intermediate} and ${b.experts}×${b.hidden}×${b.intermediate} differ in shape`);
  }
  const E = a.experts;
  const ma = Array.from({ length: E }, (_, e) => linearPart(a, e));
  const mb = Array.from({ length: E }, (_, e) => linearPart(b, e));
  const similarity = ma.map((x) => mb.map((y) => cosine(x, y)));
  const { rowAssignments } = linearSumAssignment(similarity, { maximaze: true });
  const match = Array.from(rowAssignments, (j) => j);
  const matched = match.map((j, i) => similarity[i][j]);
  const others = similarity.flatMap((row, i) => row.filter((_, j) => j !== match[i]));
  return { similarity, match, matched, meanUnmatched: others.length ? others.reduce((s, v) => s + v, 0) / others.length : 0 };
}
