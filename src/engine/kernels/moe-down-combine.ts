// The decode epilogue of a MoE layer in one kernel (shaders/moe_down_combine.wgsl): the experts' down projection,
// the weighted combine (with the shared expert's output) and the residual add, read from the token's routing record.
// It replaces the down GEMV, its [rows, H] output and the one-workgroup combine for steps of few tokens: each token
// reads the down rows of its own experts, so the weights are read once per token rather than once per expert
// (MoeLayer uses it for one-token steps).
import type { Gpu } from '../gpu';
import { FORMAT_CODE, QUANT_BLOCKS, isQuantFormat, type TensorFormat } from '../../model/dtypes';
import { EXPERT_PARAMS, planUniforms, type PlanLayout } from './moe-layout';
import { Uniforms, bindGroup, ceilDiv, kernelLayout, storageBuffer } from './common';
import { requireBytes } from './dispatch';
import { alignedRows, defaultExpertGemvRule, gemvRowUnits, type ExpertGemvTile } from './moe-expert';

/**
 * Thread layout for down rows of length I and `groups` slot groups (override WG_N; the config's top-k, so each
 * group has one slot at the model's own k): NT output columns per workgroup as the one-row down GEMV
 * (defaultExpertGemvRule), WG_K threads per row taking about `passes` of its units each, WG_K · groups ≤ the rule's
 * threads (at least 256) and the device's invocation limit.
 */
export function downCombineTile(gpu: Gpu, format: TensorFormat, I: number, groups: number): ExpertGemvTile {
  const rule = defaultExpertGemvRule('down', format, 1);
  const threads = Math.min(Math.max(rule.threads, 256), gpu.limits.maxComputeInvocationsPerWorkgroup);
  const WG_N = Math.max(1, Math.min(groups, threads));
  const WG_K = Math.max(1, Math.min(Math.floor(threads / WG_N), Math.ceil(gemvRowUnits(I, format) / rule.passes)));
  return { WG_K, WG_N, NT: rule.NT };
}

export interface DownCombineBuffers {
  /** The layer's LayerParams (top_k, shared_mode, residual_scale). */
  params: GPUBuffer | Uniforms;
  /** u32 [tokens, REC] routing records. */
  records: GPUBuffer;
  /** f32 [rows, I] the experts' activations (rows as in the records). */
  h: GPUBuffer;
  plan: GPUBuffer;
  planLayout: PlanLayout;
  /** Experts [firstExpert, firstExpert + numExperts) of down [E, H, I], in `format`. */
  weights: GPUBuffer;
  /** f32 [E, H] down biases of every expert of the layer, or null. */
  bias: GPUBuffer | null;
  /** f32 [tokens, H] shared expert output (any buffer without one). */
  sharedY: GPUBuffer;
  /** f32 [tokens, H]: the residual stream (accumulate) or the layer's output. */
  out: GPUBuffer;
}

export interface DownCombineBinding {
  group: GPUBindGroup;
  uniforms: Uniforms;
  pipeline: GPUComputePipeline;
  /** Output columns per workgroup. */
  cols: number;
}

export class MoeDownCombineKernel {
  private readonly layout;
  private noBias: GPUBuffer | null = null;
  readonly tile: ExpertGemvTile;

  constructor(
    private readonly gpu: Gpu,
    private readonly format: TensorFormat,
    /** I, the down rows' length. */
    private readonly rowLength: number,
    /** Slot groups (the config's top-k). */
    groups: number,
    /** out += residual_scale · v (the residual stream); false: the first binding stores v, later ones add. */
    readonly accumulate: boolean,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'uniform', 'read', 'read', 'read', 'read', 'read', 'read', 'rw']);
    this.tile = downCombineTile(gpu, format, rowLength, groups);
  }

  /**
   * One weight binding of the bank: dims.firstExpert/numExperts its experts, lead = the first binding (adds the
   * shared expert; stores when not accumulating). Every binding of a step is encoded, in order.
   */
  bind(label: string, b: DownCombineBuffers, dims: { hidden: number; firstExpert: number; numExperts: number }, lead: boolean): DownCombineBinding {
    const I = this.rowLength;
    const H = dims.hidden;
    if (isQuantFormat(this.format) && I % QUANT_BLOCKS[this.format].elements !== 0) {
      throw new Error(`${label}: rows of ${I} are not whole ${this.format} blocks of ${QUANT_BLOCKS[this.format].elements}`);
    }
    if (b.bias) requireBytes(label, `bias [E, ${H}]`, b.bias, (dims.firstExpert + dims.numExperts) * H * 4);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, EXPERT_PARAMS);
    uniforms.set({
      k: I, n: H, first_expert: dims.firstExpert, num_experts: dims.numExperts, ...planUniforms(b.planLayout),
      has_bias: b.bias ? 1 : 0, bias_stride: H, act_limit: 0, act_alpha: 0, act_up_offset: 0,
    });
    this.noBias ??= storageBuffer(this.gpu, 'MoeDownCombineKernel.noBias', 16);
    const group = bindGroup(this.gpu, label, this.layout,
      [uniforms.buffer, b.params, b.records, b.h, b.plan, b.weights, b.bias ?? this.noBias, b.sharedY, b.out]);
    const constants = {
      ...this.tile, WEIGHT_DTYPE: FORMAT_CODE[this.format], ALIGNED: alignedRows(I, this.format) ? 1 : 0,
      HAS_BIAS: b.bias ? 1 : 0, LEAD: lead ? 1 : 0, ACCUMULATE: this.accumulate ? 1 : 0,
    };
    const pipeline = this.gpu.pipeline('moe_down_combine', 'main', constants, this.layout.pipelineLayout, this.layout.key);
    const limit = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (ceilDiv(H, this.tile.NT) > limit) throw new RangeError(`${label}: ${H} output columns in blocks of ${this.tile.NT} need more than ${limit} workgroups`);
    return { group, uniforms, pipeline, cols: this.tile.NT };
  }

  /** Records one binding's dispatch for `tokens` tokens of `hidden` columns. */
  encode(pass: GPUComputePassEncoder, b: DownCombineBinding, hidden: number, tokens: number): void {
    pass.setPipeline(b.pipeline);
    pass.setBindGroup(0, b.group);
    pass.dispatchWorkgroups(ceilDiv(hidden, b.cols), tokens);
  }
}
