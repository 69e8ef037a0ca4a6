// Embedding gather kernel (shaders/embedding.wgsl): token ids → f32 rows of the embedding table, times a scale.
import type { Gpu } from '../gpu';
import { FORMAT_CODE, QUANT_BLOCKS, isQuantFormat, tensorBytes, type TensorFormat } from '../../model/dtypes';
import { UniformArena, Uniforms, type UniformLayout, bindGroup, kernelLayout } from './common';
import { gridStrideGroups, requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/embedding.wgsl. */
export const EMBEDDING_PARAMS: UniformLayout = { fields: ['tokens', 'hidden', 'vocab', 'ids_offset', 'scale'], floats: ['scale'] };

export const EMBEDDING_CONSTANTS = { WORKGROUP: 256 };

/** Fixed at load time: the table's shape. */
export interface EmbeddingTable {
  vocab: number;
  hidden: number;
}

/** Per step. */
export interface EmbeddingShape {
  tokens: number;
  /** Index in the ids buffer of the first token's id (default 0). */
  idsOffset?: number;
  /** Granite-MoE embedding_multiplier (default 1). */
  scale?: number;
}

export interface EmbeddingBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  table: EmbeddingTable;
  ids: GPUBuffer;
  out: GPUBuffer;
}

export class EmbeddingKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    readonly weightDtype: TensorFormat,
    private readonly arena: UniformArena | null = null,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw']);
    const constants = { ...EMBEDDING_CONSTANTS, WEIGHT_DTYPE: FORMAT_CODE[weightDtype] };
    this.pipeline = gpu.pipeline('embedding', 'main', constants, this.layout.pipelineLayout, this.layout.key);
  }

  /**
   * ids: u32 token ids; table: [vocab, hidden] in weightDtype words (or blocks); out: [tokens, hidden] f32.
   * Ids >= vocab read the last row (clamped in the shader, never out of bounds).
   */
  bind(label: string, ids: GPUBuffer, table: GPUBuffer, out: GPUBuffer, shape: EmbeddingTable): EmbeddingBinding {
    requireInt(label, 'vocab', shape.vocab, 1);
    requireInt(label, 'hidden', shape.hidden, 1);
    if (shape.vocab * shape.hidden > 0xffffffff) throw new Error(`${label}: vocab·hidden must be below 2^32 elements`);
    const bytes = tensorBytes(this.weightDtype, [shape.vocab, shape.hidden]);
    if (bytes === null) {
      const block = QUANT_BLOCKS[this.weightDtype as keyof typeof QUANT_BLOCKS].elements;
      throw new Error(`${label}: hidden ${shape.hidden} is not a multiple of ${this.weightDtype}'s ${block}-element blocks`);
    }
    requireBytes(label, `table [${shape.vocab}, ${shape.hidden}] ${this.weightDtype}`, table, Math.ceil(bytes / 4) * 4);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, EMBEDDING_PARAMS, this.arena);
    return {
      uniforms,
      bindGroup: bindGroup(this.gpu, label, this.layout, [uniforms, ids, table, out]),
      label,
      table: shape,
      ids,
      out,
    };
  }

  /** Writes the step's uniform (queue write, no allocation). */
  setShape(b: EmbeddingBinding, s: EmbeddingShape): void {
    const idsOffset = s.idsOffset ?? 0;
    requireInt(b.label, 'tokens', s.tokens, 1);
    requireBytes(b.label, `ids [${idsOffset} + ${s.tokens}]`, b.ids, (idsOffset + s.tokens) * 4);
    requireBytes(b.label, `out [${s.tokens}, ${b.table.hidden}]`, b.out, s.tokens * b.table.hidden * 4);
    b.uniforms.set({ tokens: s.tokens, hidden: b.table.hidden, vocab: b.table.vocab, ids_offset: idsOffset, scale: s.scale ?? 1 });
  }

  encode(pass: GPUComputePassEncoder, b: EmbeddingBinding, tokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    // One thread per element, or per 32-element sub-block of a quantised table.
    const units = (tokens * b.table.hidden) / (isQuantFormat(this.weightDtype) ? 32 : 1);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, units, EMBEDDING_CONSTANTS.WORKGROUP));
  }
}
