// Per-step scratch of the MoE layers, shared by all layers of a model (they run one after another).
import type { Gpu } from '../gpu';
import { storageBuffer } from '../kernels/common';
import { GEMV_ROWS } from '../kernels/moe-expert';
import { K_MAX } from '../routing-buffers';
import { REC, planLayout, type PlanLayout } from '../kernels/moe-layout';

export interface MoeScratchShape {
  experts: number;
  hidden: number;
  /** Per-expert intermediate size I. */
  intermediate: number;
  /** Shared-expert intermediate size (0 without one). */
  sharedIntermediate: number;
  /** Most tokens one encode() handles. */
  maxTokens: number;
  /** Most experts per token any policy will ask for (≤ K_MAX); sizes the expert rows. */
  maxK: number;
}

export class MoeScratch {
  /** u32 [maxTokens, REC] per-token routing record (layout.ts). */
  readonly records: GPUBuffer;
  /** f32 [2, maxTokens, experts]: router probabilities, then selection scores. */
  readonly probs: GPUBuffer;
  /** u32 dispatch plan (masks, prefix, tiles, row lists), `plan` layout. */
  readonly plan: GPUBuffer;
  readonly planLayout: PlanLayout;
  /** f32 [maxTokens · maxK, I] SwiGLU activations of the routed rows. */
  readonly h: GPUBuffer;
  /** f32 [maxTokens · maxK, H] expert outputs. */
  readonly y: GPUBuffer;
  /** Shared expert: a one-expert plan over all tokens, its activations [maxTokens, Is] and output [maxTokens, H]. */
  readonly densePlan: GPUBuffer;
  readonly densePlanLayout: PlanLayout;
  readonly sharedH: GPUBuffer;
  readonly sharedY: GPUBuffer;
  /** Bound where a kernel's optional input is absent. */
  readonly dummy: GPUBuffer;
  private densePlanState = '';
  private readonly denseWords: Uint32Array;

  constructor(
    private readonly gpu: Gpu,
    readonly shape: MoeScratchShape,
  ) {
    const { experts: E, hidden: H, intermediate: I, maxTokens: T } = shape;
    if (!(shape.maxK >= 1 && shape.maxK <= K_MAX)) throw new RangeError(`MoeScratch: maxK ${shape.maxK} must be in [1, ${K_MAX}]`);
    const rows = T * shape.maxK;
    const limit = gpu.limits.maxStorageBufferBindingSize;
    const check = (what: string, bytes: number) => {
      if (bytes > limit) {
        throw new RangeError(`MoeScratch: ${what} needs ${bytes} bytes, over the device's storage binding limit ${limit}; lower maxTokens`);
      }
      return bytes;
    };
    this.planLayout = planLayout(E, T, shape.maxK, GEMV_ROWS);
    this.records = storageBuffer(gpu, 'Moe.records', check('records', T * REC * 4));
    this.probs = storageBuffer(gpu, 'Moe.probs', check('probs', 2 * T * E * 4));
    this.plan = storageBuffer(gpu, 'Moe.plan', check('plan', this.planLayout.words * 4));
    this.h = storageBuffer(gpu, 'Moe.expertActivations', check('expert activations', rows * I * 4));
    this.y = storageBuffer(gpu, 'Moe.expertOutputs', check('expert outputs', rows * H * 4));
    this.densePlanLayout = planLayout(1, T, 1, GEMV_ROWS);
    this.densePlan = storageBuffer(gpu, 'Moe.densePlan', this.densePlanLayout.words * 4);
    const Is = Math.max(1, shape.sharedIntermediate);
    this.sharedH = storageBuffer(gpu, 'Moe.sharedActivations', shape.sharedIntermediate ? check('shared activations', T * Is * 4) : 16);
    this.sharedY = storageBuffer(gpu, 'Moe.sharedOutputs', shape.sharedIntermediate ? check('shared outputs', T * H * 4) : 16);
    this.dummy = storageBuffer(gpu, 'Moe.unused', 16);
    // The dense plan's row keys never change: row r is token r (slot 0).
    const d = this.densePlanLayout;
    this.denseWords = new Uint32Array(d.words);
    for (let r = 0; r < T; r++) this.denseWords[d.rowKey + r] = r * K_MAX;
    gpu.device.queue.writeBuffer(this.densePlan, 0, this.denseWords);
  }

  /** Writes the one-expert plan for `tokens` rows cut in tiles of `tileRows` (only when either changed). */
  prepareDensePlan(tokens: number, tileRows: number): void {
    const state = `${tokens}/${tileRows}`;
    if (state === this.densePlanState) return;
    this.densePlanState = state;
    const d = this.densePlanLayout;
    const w = this.denseWords;
    const tiles = Math.ceil(tokens / tileRows);
    w[d.header] = tiles;
    w[d.offsets] = 0;
    w[d.kept] = tokens;
    for (let i = 0; i < tiles; i++) {
      w[d.tileExpert + i] = 0;
      w[d.tileRow + i] = i * tileRows;
    }
    this.gpu.device.queue.writeBuffer(this.densePlan, 0, w, 0, d.rowKey);
  }

  destroy(): void {
    for (const b of [this.records, this.probs, this.plan, this.h, this.y, this.densePlan, this.sharedH, this.sharedY, this.dummy]) b.destroy();
  }
}
