// State-dict keys → the canonical tensors the engine uploads, one table per family, and the load plan that streams
// them into GPU buffers.
//
// Canonical layouts (PyTorch Linear weights are [out, in]; all row-major, little-endian, in the checkpoint's dtype):
//   embed [V, H], lmHead [V, H] (absent when tied: the engine reuses embed), norms [H]
//   q [nH·d, H], k/v [nKV·d, H], o [H, nH·d], q/k/v biases [nH·d]/[nKV·d]
//   qNorm/kNorm: [nH·d]/[nKV·d] ('full', OLMoE) or [d]/[d] ('head', Qwen3-MoE)
//   router [E, H], routerCorrectionBias [E] (DeepSeek-V3 e_score_correction_bias)
//   expertsGateUp [E, 2I, H]: rows 0..I-1 of expert e are its gate (w1 / gate_proj), rows I..2I-1 its up (w3 / up_proj)
//   expertsDown [E, H, I] (w2 / down_proj)
//   sharedGateUp [2Is, H], sharedDown [H, Is], sharedGate [1, H]   (Qwen2-MoE shared expert; same fused layout, E = 1)
//   denseGateUp [2I, H], denseDown [H, I]                            (dense-MLP layers; same fused layout, E = 1)
//   MLA (DeepSeek; nH heads, Q = nope + rope, R = kv_lora_rank, P = rope, V = v_head_dim, r = q_lora_rank):
//     q [nH·Q, H] (no q_lora_rank) or qA [r, H], qANorm [r], qB [nH·Q, r]; kvA [R + P, H], kvANorm [R],
//     kvB [nH·(nope + V), R], o [H, nH·V]
//   gpt-oss: oBias [H], attnSinks [nH], routerBias [E], expertsGateUpBias [E, 2I] (gate then up), expertsDownBias [E, H]
// The fused 3D checkpoint layout of transformers 5 (MixtralExperts: gate_up_proj [E, 2I, H] whose output is
// chunk(2) into gate, up; down_proj [E, H, I]) and Granite's input_linear [E, 2I, H] / output_linear [E, H, I] are
// already canonical: one part each. Per-expert checkpoints become one part per expert and projection, concatenated.
// gpt-oss stores its experts transposed (gate_up_proj [E, H, 2I] with gate and up in even and odd columns, down_proj
// [E, I, H]) and its gate_up bias interleaved: those entries carry a StoredLayout, and streamLoadPlan rearranges
// one expert at a time into the canonical layout.
import type { TensorFormat, WeightDtype } from '../model/dtypes';
import type { ModelFamily, MoeConfig } from '../model/config';
import { ModelFileError, UnsupportedModelError, field, tensorField } from './errors';
import { getTensor, SAFETENSORS_DTYPE, weightDtypeOf } from './safetensors';
import type { Checkpoint, TensorInfo } from './safetensors';
import { DEFAULT_CHUNK_BYTES } from './source';
import type { ByteSource } from './source';

export type GlobalRole = 'embed' | 'finalNorm' | 'lmHead';
export type LayerRole =
  | 'inputNorm' | 'postAttnNorm'
  | 'q' | 'k' | 'v' | 'o' | 'qBias' | 'kBias' | 'vBias' | 'qNorm' | 'kNorm'
  | 'router' | 'routerCorrectionBias' | 'expertsGateUp' | 'expertsDown'
  | 'sharedGateUp' | 'sharedDown' | 'sharedGate'
  | 'denseGateUp' | 'denseDown'
  | 'qA' | 'qANorm' | 'qB' | 'kvA' | 'kvANorm' | 'kvB'
  | GptOssRole;
/** gpt-oss's extra tensors (see the layout list above). */
export type GptOssRole = 'oBias' | 'attnSinks' | 'routerBias' | 'expertsGateUpBias' | 'expertsDownBias';
export type TensorRole = GlobalRole | LayerRole;

/** One checkpoint tensor (or all of it) copied to `dstOffset` in the entry's buffer. */
export interface TensorPart {
  /** File (shard) name in the model folder. */
  file: string;
  /** State-dict key. */
  tensor: string;
  /** Absolute byte range in the file, [byteStart, byteEnd). */
  byteStart: number;
  byteEnd: number;
  /** Where these bytes go in the destination buffer. */
  dstOffset: number;
}

/** One GPU buffer the engine creates: its canonical name, shape, dtype and where its bytes come from. */
export interface PlanEntry {
  /** `embed`, `finalNorm`, `lmHead`, or `layers.{l}.{role}` (e.g. `layers.3.expertsGateUp`). */
  name: string;
  role: TensorRole;
  /** Layer index, or null for embed / finalNorm / lmHead. */
  layer: number | null;
  shape: number[];
  /** safetensors checkpoints: the checkpoint dtype; GGUF files: each tensor's own format (quantised ones too). */
  dtype: TensorFormat;
  /** product(shape) · bytes per element (quantised: whole blocks). Buffers are this rounded up to 4 (streamLoadPlan pads with zeros). */
  byteLength: number;
  /** Contiguous, in order: part i covers [dstOffset, dstOffset + byteEnd - byteStart). */
  parts: TensorPart[];
  /** Absent: the parts' bytes are already canonical. */
  stored?: StoredLayout;
}

/**
 * How the checkpoint stores each of an entry's `count` canonical [rows, cols] matrices (row-major) when it differs:
 * `transposed` as [cols, rows]; `interleavedRows`: canonical rows r < rows/2 (gate) come from stored row 2r and
 * rows rows/2 + r (up) from 2r + 1 (rows of the stored matrix after transposing back).
 */
export interface StoredLayout {
  count: number;
  rows: number;
  cols: number;
  transposed: boolean;
  interleavedRows: boolean;
  /**
   * GGUF DeepSeek attn_k_b / attn_v_b: the first `transposedHead` rows of each matrix are stored transposed
   * ([cols, transposedHead]), the rows after them as they are (with `transposed` false).
   */
  transposedHead?: number;
}

export type ExpertLayout = 'fused' | 'per-expert';

export interface LoadPlan {
  family: ModelFamily;
  dtype: WeightDtype;
  /** Attention tensors left out (PlanOptions.ffnOnly): for MoE-block and routing tests, not a runnable model. */
  ffnOnly: boolean;
  /** In upload order: embed, then layer by layer, then finalNorm and lmHead. */
  entries: PlanEntry[];
  /** Sum of entry byte lengths: what the weights take on the GPU (before 4-byte padding). */
  totalBytes: number;
  tiedLmHead: boolean;
  /** Per layer: how the checkpoint stored its experts (null for dense layers). */
  expertLayouts: (ExpertLayout | null)[];
  /** Checkpoint tensors no entry uses (e.g. a tied lm_head.weight, rotary buffers); callers may warn. */
  unused: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Per-family key tables. `{l}` is the layer, `{e}` the expert, `{b}` the MoE block's module name.

interface Projections {
  gate: string;
  up: string;
  down: string;
}

interface AttentionKeys {
  q: string; k: string; v: string; o: string;
  qBias: string; kBias: string; vBias: string;
  qNorm: string; kNorm: string;
}

/** DeepSeek's multi-head latent attention (q_proj only without q_lora_rank; q_a/q_b only with it). */
interface MlaKeys {
  q: string; qA: string; qANorm: string; qB: string;
  kvA: string; kvANorm: string; kvB: string; o: string;
}

interface FamilyTable {
  embed: string;
  finalNorm: string;
  lmHead: string;
  /** Prefix of every per-layer key. */
  layer: string;
  inputNorm: string;
  postAttnNorm: string;
  /** Standard attention projections; null where the family's attention is not mapped (DeepSeek's MLA). */
  attention: AttentionKeys | null;
  /** Multi-head latent attention (DeepSeek), where `attention` is null. */
  mla?: MlaKeys;
  /** Candidate names of the MoE block module, tried in order (Mixtral: transformers 4 vs 5). */
  blocks: string[];
  router: string;
  /** DeepSeek-V3 e_score_correction_bias [E], mapped when the config's router has one. */
  routerCorrectionBias: string | null;
  /** Fused 3D expert tensors: gateUp [E, 2I, H], down [E, H, I]. */
  fused: { gateUp: string; down: string };
  /** Per-expert 2D tensors: gate/up [I, H], down [H, I]; null where the family never stored them so. */
  perExpert: Projections | null;
  shared: Projections | null;
  sharedGate: string | null;
  dense: Projections | null;
}

const DECODER = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  layer: 'model.layers.{l}.',
  inputNorm: 'input_layernorm.weight',
  postAttnNorm: 'post_attention_layernorm.weight',
  routerCorrectionBias: null,
};

const LLAMA_ATTENTION: AttentionKeys = {
  q: 'self_attn.q_proj.weight', k: 'self_attn.k_proj.weight', v: 'self_attn.v_proj.weight', o: 'self_attn.o_proj.weight',
  qBias: 'self_attn.q_proj.bias', kBias: 'self_attn.k_proj.bias', vBias: 'self_attn.v_proj.bias',
  qNorm: 'self_attn.q_norm.weight', kNorm: 'self_attn.k_norm.weight',
};

const GATE_UP_DOWN_EXPERTS: Projections = {
  gate: '{b}.experts.{e}.gate_proj.weight',
  up: '{b}.experts.{e}.up_proj.weight',
  down: '{b}.experts.{e}.down_proj.weight',
};

const FUSED_EXPERTS = { gateUp: '{b}.experts.gate_up_proj', down: '{b}.experts.down_proj' };

const DENSE_MLP: Projections = { gate: 'mlp.gate_proj.weight', up: 'mlp.up_proj.weight', down: 'mlp.down_proj.weight' };

export const FAMILY_TABLES: Partial<Record<ModelFamily, FamilyTable>> = {
  mixtral: {
    ...DECODER,
    attention: LLAMA_ATTENTION,
    blocks: ['block_sparse_moe', 'mlp'], // transformers 4 checkpoints / transformers 5 module names
    router: '{b}.gate.weight',
    fused: FUSED_EXPERTS,
    perExpert: { gate: '{b}.experts.{e}.w1.weight', up: '{b}.experts.{e}.w3.weight', down: '{b}.experts.{e}.w2.weight' },
    shared: null, sharedGate: null, dense: null,
  },
  qwen2_moe: {
    ...DECODER,
    attention: LLAMA_ATTENTION,
    blocks: ['mlp'],
    router: '{b}.gate.weight',
    fused: FUSED_EXPERTS,
    perExpert: GATE_UP_DOWN_EXPERTS,
    shared: {
      gate: 'mlp.shared_expert.gate_proj.weight',
      up: 'mlp.shared_expert.up_proj.weight',
      down: 'mlp.shared_expert.down_proj.weight',
    },
    sharedGate: 'mlp.shared_expert_gate.weight',
    dense: DENSE_MLP,
  },
  qwen3_moe: {
    ...DECODER,
    attention: LLAMA_ATTENTION,
    blocks: ['mlp'],
    router: '{b}.gate.weight',
    fused: FUSED_EXPERTS,
    perExpert: GATE_UP_DOWN_EXPERTS,
    shared: null, sharedGate: null,
    dense: DENSE_MLP,
  },
  olmoe: {
    ...DECODER,
    attention: LLAMA_ATTENTION,
    blocks: ['mlp'],
    router: '{b}.gate.weight',
    fused: FUSED_EXPERTS,
    perExpert: GATE_UP_DOWN_EXPERTS,
    shared: null, sharedGate: null, dense: null,
  },
  granitemoe: {
    ...DECODER,
    attention: LLAMA_ATTENTION,
    blocks: ['block_sparse_moe'],
    router: '{b}.router.layer.weight',
    // GraniteMoeParallelExperts: input_linear [E, 2I, H] (output chunk(2) → gate, up), output_linear [E, H, I].
    fused: { gateUp: '{b}.input_linear.weight', down: '{b}.output_linear.weight' },
    perExpert: null,
    shared: null, sharedGate: null, dense: null,
  },
};

/** gpt-oss's keys beyond FamilyTable (every name under the layer prefix, `{b}` = mlp). */
export const GPT_OSS_KEYS = {
  oBias: 'self_attn.o_proj.bias',
  attnSinks: 'self_attn.sinks',
  routerBias: '{b}.router.bias',
  expertsGateUpBias: '{b}.experts.gate_up_proj_bias',
  expertsDownBias: '{b}.experts.down_proj_bias',
};

FAMILY_TABLES.gpt_oss = {
  ...DECODER,
  attention: LLAMA_ATTENTION,
  blocks: ['mlp'],
  router: '{b}.router.weight',
  // Stored transposed: gate_up_proj [E, H, 2I] (gate = even columns, up = odd), down_proj [E, I, H].
  fused: FUSED_EXPERTS,
  perExpert: null,
  shared: null, sharedGate: null, dense: null,
};

const DEEPSEEK: FamilyTable = {
  ...DECODER,
  attention: null,
  mla: {
    q: 'self_attn.q_proj.weight', qA: 'self_attn.q_a_proj.weight', qANorm: 'self_attn.q_a_layernorm.weight', qB: 'self_attn.q_b_proj.weight',
    kvA: 'self_attn.kv_a_proj_with_mqa.weight', kvANorm: 'self_attn.kv_a_layernorm.weight', kvB: 'self_attn.kv_b_proj.weight',
    o: 'self_attn.o_proj.weight',
  },
  blocks: ['mlp'],
  router: '{b}.gate.weight',
  routerCorrectionBias: '{b}.gate.e_score_correction_bias',
  fused: FUSED_EXPERTS,
  perExpert: GATE_UP_DOWN_EXPERTS,
  shared: {
    gate: 'mlp.shared_experts.gate_proj.weight',
    up: 'mlp.shared_experts.up_proj.weight',
    down: 'mlp.shared_experts.down_proj.weight',
  },
  sharedGate: null,
  dense: DENSE_MLP,
};
FAMILY_TABLES.deepseek_v2 = DEEPSEEK;
FAMILY_TABLES.deepseek_v3 = DEEPSEEK;

const fill = (template: string, vars: { l?: number; e?: number; b?: string }): string =>
  template.replace('{l}', String(vars.l)).replace('{e}', String(vars.e)).replace('{b}', vars.b ?? '');

const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

export interface PlanOptions {
  /**
   * Where the expected dtype came from, for messages (default: the config's torch_dtype). openModel passes "the
   * checkpoint's embedding" when config.json names no dtype and the embedding's dtype was taken instead.
   */
  dtypeOrigin?: string;
  /**
   * Leave attention out: embeddings, norms, routers, experts, shared and dense MLPs only. Allowed for models the
   * engine cannot run, for MoE-block and routing tests against a checkpoint.
   */
  ffnOnly?: boolean;
}

/**
 * Maps a checkpoint onto the canonical tensors of `config`, checking every tensor's dtype and shape against it.
 * Errors name the file, the tensor and expected vs found. Refuses configs the engine cannot run, unless ffnOnly.
 */
export function buildLoadPlan(config: MoeConfig, ckpt: Checkpoint, options: PlanOptions = {}): LoadPlan {
  const ffnOnly = options.ffnOnly ?? false;
  if (config.unsupported && !ffnOnly) throw new UnsupportedModelError(config.source, config.unsupported);
  const table = FAMILY_TABLES[config.family];
  if (!table) throw new UnsupportedModelError(config.source, `field "model_type": no weight table for "${config.family}"`);
  if (!table.attention && !table.mla && !ffnOnly) throw new UnsupportedModelError(config.source, `field "model_type": ${config.family} attention is not mapped`);
  const origin = options.dtypeOrigin ?? `${config.source} gives ${config.weightDtype} weights (torch_dtype or dtype; f32 when it names none)`;
  return new PlanBuilder(config, ckpt, table, origin, ffnOnly).build();
}

class PlanBuilder {
  private readonly entries: PlanEntry[] = [];
  private readonly used = new Set<string>();
  private readonly expertLayouts: (ExpertLayout | null)[] = [];
  private readonly H: number;

  constructor(
    private readonly c: MoeConfig,
    private readonly ckpt: Checkpoint,
    private readonly t: FamilyTable,
    private readonly dtypeOrigin: string,
    private readonly ffnOnly: boolean,
  ) {
    this.H = c.hiddenSize;
  }

  build(): LoadPlan {
    const { c, t, H } = this;
    this.single('embed', null, t.embed, [c.vocabSize, H], 'embedding');
    for (let l = 0; l < c.numLayers; l++) this.layer(l);
    this.single('finalNorm', null, t.finalNorm, [H], 'final norm');
    if (!c.tieWordEmbeddings) this.single('lmHead', null, t.lmHead, [c.vocabSize, H], 'LM head (tie_word_embeddings is false)');
    const unused = [...this.ckpt.tensors.keys()].filter((k) => !this.used.has(k)).sort();
    return {
      family: c.family,
      dtype: c.weightDtype,
      ffnOnly: this.ffnOnly,
      entries: this.entries,
      totalBytes: this.entries.reduce((s, e) => s + e.byteLength, 0),
      tiedLmHead: c.tieWordEmbeddings,
      expertLayouts: this.expertLayouts,
      unused,
    };
  }

  private layer(l: number): void {
    const { c, t, H } = this;
    const key = (suffix: string) => fill(t.layer, { l }) + suffix;
    const qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
    const at = `layer ${l}`;
    this.single('inputNorm', l, key(t.inputNorm), [H], `${at} input norm`);
    this.single('postAttnNorm', l, key(t.postAttnNorm), [H], `${at} post-attention norm`);
    const a = t.attention;
    if (a && !this.ffnOnly) {
      this.single('q', l, key(a.q), [qDim, H], `${at} q_proj: num_attention_heads·head_dim × hidden_size`);
      this.single('k', l, key(a.k), [kvDim, H], `${at} k_proj: num_key_value_heads·head_dim × hidden_size`);
      this.single('v', l, key(a.v), [kvDim, H], `${at} v_proj: num_key_value_heads·head_dim × hidden_size`);
      this.single('o', l, key(a.o), [H, qDim], `${at} o_proj`);
      if (c.attentionBias) {
        this.single('qBias', l, key(a.qBias), [qDim], `${at} q_proj bias`);
        this.single('kBias', l, key(a.kBias), [kvDim], `${at} k_proj bias`);
        this.single('vBias', l, key(a.vBias), [kvDim], `${at} v_proj bias`);
      }
      if (c.outputBias) this.single('oBias', l, key(GPT_OSS_KEYS.oBias), [H], `${at} o_proj bias`);
      if (c.attentionSinks) this.single('attnSinks', l, key(GPT_OSS_KEYS.attnSinks), [c.numHeads], `${at} attention sinks: num_attention_heads`);
      if (c.qkNorm !== 'none') {
        const full = c.qkNorm === 'full';
        this.single('qNorm', l, key(a.qNorm), [full ? qDim : c.headDim], `${at} q_norm (${c.qkNorm})`);
        this.single('kNorm', l, key(a.kNorm), [full ? kvDim : c.headDim], `${at} k_norm (${c.qkNorm})`);
      }
    }
    if (t.mla && c.mla && !this.ffnOnly) this.mla(l, key, t.mla, c.mla);
    if (c.moeLayers[l]) this.moe(l, key);
    else {
      this.expertLayouts.push(null);
      if (!t.dense) throw new ModelFileError(c.source, field('num_hidden_layers'), `${c.family} has no dense-MLP layers, but layer ${l} is not a MoE layer`);
      this.gateUpDown('dense', l, key(t.dense.gate), key(t.dense.up), key(t.dense.down), c.intermediateSize, `${at} dense MLP (intermediate_size)`);
    }
  }

  private mla(l: number, key: (s: string) => string, k: MlaKeys, m: NonNullable<MoeConfig['mla']>): void {
    const { c, H } = this;
    const at = `layer ${l}`;
    const qOut = c.numHeads * (m.qkNopeHeadDim + m.qkRopeHeadDim);
    if (m.qLoraRank === null) {
      this.single('q', l, key(k.q), [qOut, H], `${at} q_proj: num_attention_heads·(qk_nope_head_dim + qk_rope_head_dim) × hidden_size`);
    } else {
      this.single('qA', l, key(k.qA), [m.qLoraRank, H], `${at} q_a_proj: q_lora_rank × hidden_size`);
      this.single('qANorm', l, key(k.qANorm), [m.qLoraRank], `${at} q_a_layernorm`);
      this.single('qB', l, key(k.qB), [qOut, m.qLoraRank], `${at} q_b_proj: num_attention_heads·(qk_nope_head_dim + qk_rope_head_dim) × q_lora_rank`);
    }
    this.single('kvA', l, key(k.kvA), [m.kvLoraRank + m.qkRopeHeadDim, H], `${at} kv_a_proj_with_mqa: (kv_lora_rank + qk_rope_head_dim) × hidden_size`);
    this.single('kvANorm', l, key(k.kvANorm), [m.kvLoraRank], `${at} kv_a_layernorm`);
    this.single('kvB', l, key(k.kvB), [c.numHeads * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank],
      `${at} kv_b_proj: num_attention_heads·(qk_nope_head_dim + v_head_dim) × kv_lora_rank`);
    this.single('o', l, key(k.o), [H, c.numHeads * m.vHeadDim], `${at} o_proj: hidden_size × num_attention_heads·v_head_dim`);
  }

  private moe(l: number, key: (s: string) => string): void {
    const { c, t, H } = this;
    const E = c.numExperts, I = c.moeIntermediateSize;
    const at = `layer ${l}`;
    // The block's module name is whichever candidate has the router (Mixtral: block_sparse_moe or mlp).
    const block = t.blocks.find((b) => this.ckpt.tensors.has(key(fill(t.router, { b })))) ?? t.blocks[0];
    const name = (template: string, e?: number) => key(fill(template, { b: block, e }));
    this.single('router', l, name(t.router), [E, H], `${at} router: num_experts × hidden_size`);
    if (c.router.hasCorrectionBias) {
      if (!t.routerCorrectionBias) throw new ModelFileError(c.source, field('topk_method'), `${c.family} has no router correction bias in its table`);
      this.single('routerCorrectionBias', l, name(t.routerCorrectionBias), [E], `${at} e_score_correction_bias`);
    }

    if (c.router.hasBias) this.single('routerBias', l, name(GPT_OSS_KEYS.routerBias), [E], `${at} router bias: num_experts`);
    if (c.family === 'gpt_oss') {
      this.gptOssExperts(l, name);
      return;
    }

    const fusedGateUp = name(t.fused.gateUp), fusedDown = name(t.fused.down);
    const hasFused = this.ckpt.tensors.has(fusedGateUp);
    const hasPerExpert = t.perExpert !== null && this.ckpt.tensors.has(name(t.perExpert.gate, 0));
    if (hasFused && hasPerExpert) {
      throw new ModelFileError(this.ckpt.entryFile, tensorField(fusedGateUp), `${at} stores its experts both fused and per expert ("${name(t.perExpert!.gate, 0)}"); expected one layout`);
    }
    if (hasFused) {
      this.expertLayouts.push('fused');
      this.single('expertsGateUp', l, fusedGateUp, [E, 2 * I, H], `${at} experts gate_up: num_experts × 2·expert intermediate × hidden_size`);
      this.single('expertsDown', l, fusedDown, [E, H, I], `${at} experts down: num_experts × hidden_size × expert intermediate`);
    } else if (hasPerExpert) {
      this.expertLayouts.push('per-expert');
      const p = t.perExpert!;
      const gateUp: TensorInfo[] = [], down: TensorInfo[] = [];
      for (let e = 0; e < E; e++) {
        gateUp.push(this.tensor(name(p.gate, e), [I, H], `${at} expert ${e} gate`));
        gateUp.push(this.tensor(name(p.up, e), [I, H], `${at} expert ${e} up`));
        down.push(this.tensor(name(p.down, e), [H, I], `${at} expert ${e} down`));
      }
      this.entry('expertsGateUp', l, [E, 2 * I, H], gateUp);
      this.entry('expertsDown', l, [E, H, I], down);
    } else {
      const perExpert = t.perExpert ? ` or "${name(t.perExpert.gate, 0)}"` : '';
      throw new ModelFileError(this.ckpt.entryFile, tensorField(fusedGateUp), `missing (${at} experts: looked for "${fusedGateUp}"${perExpert})`);
    }

    if (c.sharedExpert) {
      if (!t.shared) throw new ModelFileError(c.source, field('shared_expert_intermediate_size'), `${c.family} has no shared-expert weights in its table`);
      this.gateUpDown('shared', l, key(t.shared.gate), key(t.shared.up), key(t.shared.down), c.sharedExpert.intermediateSize, `${at} shared expert (shared_expert_intermediate_size)`);
      if (c.sharedExpert.gated) {
        if (!t.sharedGate) throw new ModelFileError(c.source, field('shared_expert_intermediate_size'), `${c.family} has no shared-expert gate in its table`);
        this.single('sharedGate', l, key(t.sharedGate), [1, H], `${at} shared_expert_gate`);
      }
    }
  }

  /**
   * gpt-oss experts, stored transposed with gate/up interleaved (see StoredLayout), and their biases: canonical
   * entries with the checkpoint's layout attached.
   */
  private gptOssExperts(l: number, name: (template: string, e?: number) => string): void {
    const { c, t, H } = this;
    const E = c.numExperts, I = c.moeIntermediateSize;
    const at = `layer ${l}`;
    this.expertLayouts.push('fused');
    const stored = (role: TensorRole, key: string, storedShape: number[], shape: number[], layout: Omit<StoredLayout, 'count'>, what: string) => {
      this.entry(role, l, shape, [this.tensor(key, storedShape, what)], { count: E, ...layout });
    };
    stored('expertsGateUp', name(t.fused.gateUp), [E, H, 2 * I], [E, 2 * I, H], { rows: 2 * I, cols: H, transposed: true, interleavedRows: true },
      `${at} experts gate_up_proj: num_experts × hidden_size × 2·intermediate_size`);
    stored('expertsDown', name(t.fused.down), [E, I, H], [E, H, I], { rows: H, cols: I, transposed: true, interleavedRows: false },
      `${at} experts down_proj: num_experts × intermediate_size × hidden_size`);
    if (c.expertBias) {
      stored('expertsGateUpBias', name(GPT_OSS_KEYS.expertsGateUpBias), [E, 2 * I], [E, 2 * I], { rows: 2 * I, cols: 1, transposed: false, interleavedRows: true },
        `${at} experts gate_up_proj_bias: num_experts × 2·intermediate_size`);
      this.single('expertsDownBias', l, name(GPT_OSS_KEYS.expertsDownBias), [E, H], `${at} experts down_proj_bias: num_experts × hidden_size`);
    }
  }

  /** A gate/up/down MLP as the canonical fused gateUp [2I, H] and down [H, I]. */
  private gateUpDown(kind: 'dense' | 'shared', l: number, gate: string, up: string, down: string, I: number, what: string): void {
    const H = this.H;
    const g = this.tensor(gate, [I, H], `${what} gate_proj`);
    const u = this.tensor(up, [I, H], `${what} up_proj`);
    const d = this.tensor(down, [H, I], `${what} down_proj`);
    this.entry(kind === 'dense' ? 'denseGateUp' : 'sharedGateUp', l, [2 * I, H], [g, u]);
    this.entry(kind === 'dense' ? 'denseDown' : 'sharedDown', l, [H, I], [d]);
  }

  private single(role: TensorRole, layer: number | null, name: string, shape: number[], what: string): void {
    this.entry(role, layer, shape, [this.tensor(name, shape, what)]);
  }

  /** Looks a tensor up and checks its dtype and shape. */
  private tensor(name: string, shape: number[], what: string): TensorInfo {
    const info = getTensor(this.ckpt, name, what);
    const dtype = weightDtypeOf(info);
    if (dtype !== this.c.weightDtype) {
      throw new ModelFileError(info.file, tensorField(name), `dtype ${info.dtype} but ${this.dtypeOrigin} (expected ${SAFETENSORS_DTYPE[this.c.weightDtype]})`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new ModelFileError(info.file, tensorField(name), `shape ${fmt(info.shape)} but ${this.c.source} implies ${fmt(shape)} (${what})`);
    }
    this.used.add(name);
    return info;
  }

  private entry(role: TensorRole, layer: number | null, shape: number[], tensors: TensorInfo[], stored?: StoredLayout): void {
    let dst = 0;
    const parts = tensors.map((t) => {
      const part = { file: t.file, tensor: t.name, byteStart: t.begin, byteEnd: t.end, dstOffset: dst };
      dst += t.end - t.begin;
      return part;
    });
    this.entries.push({
      name: layer === null ? role : `layers.${layer}.${role}`,
      role, layer, shape,
      dtype: this.c.weightDtype,
      byteLength: dst,
      parts,
      ...(stored ? { stored } : {}),
    });
  }
}

/** The entry for a role (and layer), or undefined. */
export function planEntry(plan: LoadPlan, role: TensorRole, layer: number | null = null): PlanEntry | undefined {
  return plan.entries.find((e) => e.role === role && e.layer === layer);
}

// ---------------------------------------------------------------------------------------------------------------
// Streaming a plan into buffers

/**
 * Receives an entry's bytes: write `bytes` at `dstOffset` in the entry's buffer (e.g. queue.writeBuffer).
 * dstOffset and bytes.byteLength are always multiples of 4 (the last chunk of an entry is zero-padded), so they
 * can go straight to writeBuffer. Each call gets a fresh array.
 */
export type PlanSink = (entry: PlanEntry, dstOffset: number, bytes: Uint8Array) => void | Promise<void>;

export interface StreamPlanOptions {
  /** Chunk size in bytes (rounded down to a multiple of 4). Default 8 MiB. */
  chunkBytes?: number;
  /** Bytes read so far / plan.totalBytes, after every chunk. */
  onProgress?: (done: number, total: number, entry: PlanEntry) => void;
  signal?: AbortSignal;
}

/** Buffer size of an entry: its byte length rounded up to 4 (WebGPU buffer sizes and writes are 4-byte multiples). */
export const bufferSize = (entry: PlanEntry): number => Math.ceil(entry.byteLength / 4) * 4;

/**
 * One stored matrix (StoredLayout) rearranged into its canonical [rows, cols] row-major bytes; `bytesPerElement`
 * is the dtype's size.
 */
export function canonicalMatrix(stored: Uint8Array, layout: StoredLayout, bytesPerElement: number): Uint8Array {
  const { rows, cols } = layout;
  const View = bytesPerElement === 4 ? Uint32Array : Uint16Array;
  // Copied to a fresh, aligned buffer so both sides are element views.
  const from = new View(stored.slice().buffer, 0, rows * cols);
  const to = new View(rows * cols);
  const half = rows / 2;
  for (let r = 0; r < rows; r++) {
    // The stored row (after transposing back) that canonical row r comes from.
    const src = layout.interleavedRows ? (r < half ? 2 * r : 2 * (r - half) + 1) : r;
    const out = r * cols;
    const head = layout.transposedHead ?? 0;
    if (layout.transposed) {
      for (let col = 0; col < cols; col++) to[out + col] = from[col * rows + src]; // stored [cols, rows]
    } else if (r < head) {
      for (let col = 0; col < cols; col++) to[out + col] = from[col * head + r]; // stored [cols, head] first
    } else {
      to.set(from.subarray(src * cols, src * cols + cols), out); // stored [rows, cols]
    }
  }
  return new Uint8Array(to.buffer);
}

/** An entry's bytes in canonical order: its parts as read, or one rearranged matrix at a time (entry.stored). */
async function* canonicalChunks(entry: PlanEntry, raw: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const layout = entry.stored;
  if (!layout) {
    yield* raw;
    return;
  }
  const bytesPerElement = entry.byteLength / (layout.count * layout.rows * layout.cols);
  const matrix = new Uint8Array(entry.byteLength / layout.count);
  let fill = 0;
  for await (const chunk of raw) {
    for (let at = 0; at < chunk.byteLength; ) {
      const n = Math.min(chunk.byteLength - at, matrix.byteLength - fill);
      matrix.set(chunk.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === matrix.byteLength) {
        yield canonicalMatrix(matrix, layout, bytesPerElement);
        fill = 0;
      }
    }
  }
  if (fill !== 0) throw new Error(`streamLoadPlan: ${entry.name}: parts end inside a matrix`);
}

/** Parts at most this large (bytes) are read through SmallReads. */
const SMALL_PART_BYTES = 256 << 10;
/** Blocks SmallReads keeps (each one chunk): a plan's order jumps within a region of the file, not across it. */
const SMALL_READ_BLOCKS = 4;

/**
 * Small parts read through whole blocks of their file (aligned chunks, the last few kept): a checkpoint of many small
 * tensors (a 64-layer × 256-expert model stores 49,280 tensors of 4 KB) costs a few dozen reads instead of one per
 * tensor, and a read is a request (a URL), or a round trip to the browser's file reader (a picked file).
 */
class SmallReads {
  private readonly blocks = new Map<string, Promise<Uint8Array>>(); // `${file}@${block}` → bytes, oldest first

  constructor(private readonly blockBytes: number) {}

  async read(file: string, source: ByteSource, offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > source.size) return source.read(offset, length); // its error names the file and range
    const out = new Uint8Array(length);
    for (let at = 0; at < length; ) {
      const block = Math.floor((offset + at) / this.blockBytes);
      const bytes = await this.block(file, source, block);
      const from = offset + at - block * this.blockBytes;
      const n = Math.min(length - at, bytes.byteLength - from);
      out.set(bytes.subarray(from, from + n), at);
      at += n;
    }
    return out;
  }

  private block(file: string, source: ByteSource, block: number): Promise<Uint8Array> {
    const key = `${file}@${block}`;
    let bytes = this.blocks.get(key);
    if (bytes) {
      this.blocks.delete(key); // most recently used last
    } else {
      const start = block * this.blockBytes;
      bytes = source.read(start, Math.min(this.blockBytes, source.size - start));
      if (this.blocks.size >= SMALL_READ_BLOCKS) this.blocks.delete(this.blocks.keys().next().value!);
    }
    this.blocks.set(key, bytes);
    return bytes;
  }
}

/** `bytes` as views of at most `n` bytes. */
function* pieces(bytes: Uint8Array, n: number): Iterable<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += n) yield bytes.subarray(at, at + n);
}

/**
 * Streams every entry of a plan, in order, to `sink` in bounded chunks: parts are read by byte range from their
 * files and concatenated, never holding more than one chunk per call (plus one matrix for entries with a
 * StoredLayout, rearranged before it is passed on, and the few blocks SmallReads keeps).
 */
export async function streamLoadPlan(ckpt: Pick<Checkpoint, 'folder'>, plan: LoadPlan, sink: PlanSink, options: StreamPlanOptions = {}): Promise<void> {
  const chunkBytes = Math.max(4, Math.floor((options.chunkBytes ?? DEFAULT_CHUNK_BYTES) / 4) * 4);
  const sources = new Map<string, ByteSource>();
  const open = async (file: string) => {
    let s = sources.get(file);
    if (!s) {
      s = await ckpt.folder.open(file);
      sources.set(file, s);
    }
    return s;
  };
  const small = new SmallReads(chunkBytes);
  let done = 0;
  try {
    for (const entry of plan.entries) {
      const size = bufferSize(entry);
      let staging = new Uint8Array(Math.min(chunkBytes, size));
      let fillAt = 0; // bytes in staging
      let flushedTo = 0; // dst offset of staging[0]
      const flush = async (final: boolean) => {
        if (fillAt === 0) return;
        // The last chunk of an entry is padded with zeros to the 4-byte-aligned buffer size.
        const n = final ? Math.ceil(fillAt / 4) * 4 : fillAt;
        await sink(entry, flushedTo, staging.subarray(0, n));
        flushedTo += n;
        fillAt = 0;
        staging = new Uint8Array(Math.min(chunkBytes, size - flushedTo));
      };
      async function* raw(): AsyncIterable<Uint8Array> {
        for (const part of entry.parts) {
          const source = await open(part.file);
          const length = part.byteEnd - part.byteStart;
          const chunks = length <= SMALL_PART_BYTES ? pieces(await small.read(part.file, source, part.byteStart, length), chunkBytes) : source.stream(part.byteStart, length, chunkBytes);
          for await (const chunk of chunks) {
            options.signal?.throwIfAborted();
            yield chunk;
            done += chunk.byteLength;
            options.onProgress?.(done, plan.totalBytes, entry);
          }
        }
      }
      for await (const chunk of canonicalChunks(entry, raw())) {
        for (let at = 0; at < chunk.byteLength; ) {
          const n = Math.min(chunk.byteLength - at, staging.byteLength - fillAt);
          if (n === 0) throw new Error(`streamLoadPlan: ${entry.name}: parts hold more than ${entry.byteLength} bytes`);
          staging.set(chunk.subarray(at, at + n), fillAt);
          fillAt += n;
          at += n;
          if (fillAt === staging.byteLength && flushedTo + fillAt < size) await flush(false);
        }
      }
      await flush(true);
    }
  } finally {
    for (const s of sources.values()) await s.close();
  }
}
