// mergekit's experiment, live: replace every expert of an MoE layer by the experts' average (a linear merge) or by a
// copy of one expert, in the GPU weight banks the layer runs from, then run text again to see what the model predicts.
// The original bank contents are kept on the CPU and written back by restore(). Rewrites go through the queue
// (read back once, decoded from the checkpoint's dtype, merged in float64, packed back to that dtype).
import type { Session } from '../model/session';
import type { ExpertBank, MoeLayer } from '../routing/moe-layer';
import { readBuffer } from '../kernels/common';
import { bytesPerElement, decodeToF32, packWeights } from '../../model/dtypes';

export type MergeMode = { kind: 'average' } | { kind: 'copy'; expert: number };

interface SavedBank {
  bank: ExpertBank;
  /** Elements per expert. */
  elements: number;
  /** Original bytes of each buffer of the bank. */
  bytes: ArrayBuffer[];
}

export class ExpertMerger {
  private readonly saved = new Map<number, SavedBank[]>();

  constructor(private readonly session: Session) {}

  /** Layers whose experts are currently merged. */
  get mergedLayers(): number[] {
    return [...this.saved.keys()].sort((a, b) => a - b);
  }

  private moeLayer(layer: number): MoeLayer {
    const m = this.session.decoder.moeLayers.find((x) => x.layer === layer);
    if (!m) throw new RangeError(`expert merge: layer ${layer} is not an MoE layer of this model`);
    return m;
  }

  /** Rewrites the layer's experts (from the original weights, whatever an earlier merge did). */
  async merge(layer: number, mode: MergeMode): Promise<void> {
    const c = this.session.config;
    const E = c.numExperts;
    if (mode.kind === 'copy' && !(Number.isInteger(mode.expert) && mode.expert >= 0 && mode.expert < E)) {
      throw new RangeError(`expert merge: expert ${mode.expert} is not one of the ${E} experts`);
    }
    const { gateUp, down } = this.moeLayer(layer).weights;
    const H = c.hiddenSize;
    const I = c.moeIntermediateSize;
    let saved = this.saved.get(layer);
    if (!saved) {
      saved = [];
      for (const [bank, elements] of [[gateUp, 2 * I * H], [down, H * I]] as const) {
        const bytes = await Promise.all(bank.buffers.map((b) => readBuffer(this.session.gpu, b)));
        saved.push({ bank, elements, bytes });
      }
      this.saved.set(layer, saved);
    }
    const dtype = c.weightDtype;
    for (const s of saved) {
      const n = s.elements;
      const per = s.bank.expertsPerBuffer;
      // All experts of the bank as f32 [E, n].
      const all = new Float32Array(E * n);
      s.bytes.forEach((raw, b) => {
        const local = Math.min(per, E - b * per);
        all.set(decodeToF32(new Uint8Array(raw, 0, local * n * bytesPerElement(dtype)), dtype), b * per * n);
      });
      const one = new Float32Array(n);
      if (mode.kind === 'copy') one.set(all.subarray(mode.expert * n, (mode.expert + 1) * n));
      else {
        for (let i = 0; i < n; i++) {
          let sum = 0;
          for (let e = 0; e < E; e++) sum += all[e * n + i];
          one[i] = sum / E;
        }
      }
      s.bank.buffers.forEach((buffer, b) => {
        const local = Math.min(per, E - b * per);
        const values = new Float32Array(local * n);
        for (let e = 0; e < local; e++) values.set(one, e * n);
        this.session.gpu.device.queue.writeBuffer(buffer, 0, packWeights(values, dtype).words);
      });
    }
  }

  /** Writes the original experts back (one layer, or every merged layer). */
  restore(layer?: number): void {
    for (const l of layer === undefined ? this.mergedLayers : [layer]) {
      for (const s of this.saved.get(l) ?? []) {
        s.bank.buffers.forEach((buffer, b) => this.session.gpu.device.queue.writeBuffer(buffer, 0, s.bytes[b]));
      }
      this.saved.delete(l);
    }
  }
}
