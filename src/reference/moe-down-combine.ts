// Naive float64 reference of a MoE layer's decode epilogue: each token's routed experts' down projections of their
// activation rows, weighted by the gate weights, plus the shared expert's output, added to the residual stream:
//   out[t, n] = x[t, n] + residualScale · (Σ_s w[t, s] · (Σ_i down[e_s, n, i] · act[row_s, i] + downBias[e_s, n])
//                                         + g_t · sharedY[t, n])
// over the slots whose row is not `null` (dropped by capacity or not routed), with g_t = σ(sharedGateLogit[t]) for a
// gated shared expert and 1 for an ungated one. Without residualScale the output is the sum alone.

export interface DownCombineSlot {
  expert: number;
  /** Row of `act`, or null: the slot contributes nothing. */
  row: number | null;
  weight: number;
}

export interface DownCombineRefInput {
  T: number;
  H: number;
  I: number;
  /** [T][k] each token's slots. */
  slots: DownCombineSlot[][];
  /** [rows, I] expert activations. */
  act: ArrayLike<number>;
  /** [E, H, I] down weights. */
  down: ArrayLike<number>;
  /** [E, H] down biases (gpt-oss). */
  downBias?: ArrayLike<number>;
  /** Shared expert: its output [T, H], and its gate logits [T] when gated. */
  shared?: { y: ArrayLike<number>; gateLogits?: ArrayLike<number> };
  /** [T, H] residual stream and its scale; absent: the output is the layer's output alone. */
  residual?: { x: ArrayLike<number>; scale: number };
}

export function downCombineRef(inp: DownCombineRefInput): Float64Array {
  const { T, H, I } = inp;
  const out = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < H; n++) {
      let v = 0;
      for (const slot of inp.slots[t]) {
        if (slot.row === null) continue;
        let d = inp.downBias ? inp.downBias[slot.expert * H + n] : 0;
        for (let i = 0; i < I; i++) d += inp.down[(slot.expert * H + n) * I + i] * inp.act[slot.row * I + i];
        v += slot.weight * d;
      }
      if (inp.shared) {
        const logits = inp.shared.gateLogits;
        const g = logits ? 1 / (1 + Math.exp(-logits[t])) : 1;
        v += g * inp.shared.y[t * H + n];
      }
      out[t * H + n] = inp.residual ? inp.residual.x[t * H + n] + inp.residual.scale * v : v;
    }
  }
  return out;
}
