// MoeConfig: the one normalised description of a model the engine runs. Every family's config.json is turned into
// this in src/io/config.ts; nothing else in the engine reads a raw config.json.
import type { WeightDtype } from './dtypes';
import type { RopeScaling } from './rope';

export type ModelFamily = 'mixtral' | 'qwen2_moe' | 'qwen3_moe' | 'olmoe' | 'granitemoe' | 'deepseek_v2' | 'deepseek_v3';

/** How router logits become gate weights. */
export interface RouterConfig {
  /** 'softmax' over all experts, or independent 'sigmoid' per expert (DeepSeek-V3). */
  scoring: 'softmax' | 'sigmoid';
  /** Experts chosen per token (num_experts_per_tok). */
  topK: number;
  /** Renormalise the chosen k weights to sum to 1 (norm_topk_prob; Mixtral and Granite always do). */
  normTopK: boolean;
  /** Router has a bias term added to its logits (x·Wᵀ + b). */
  hasBias: boolean;
  /** DeepSeek-V3 e_score_correction_bias: added to scores for selection only, never to the weights. */
  hasCorrectionBias: boolean;
  /** Group-limited top-k (DeepSeek): experts split into nGroup groups, only the best topkGroup groups considered. 1 = off. */
  nGroup: number;
  topkGroup: number;
  /** Multiplies the final gate weights (DeepSeek routed_scaling_factor); 1 otherwise. */
  routedScalingFactor: number;
  /** Switch-style expert capacity: capacity = ceil(capacityFactor · tokens · k / experts); 0 = unlimited. */
  capacityFactor: number;
}

export interface SharedExpertConfig {
  /** Intermediate size of the shared expert(s) in total (Qwen2-MoE shared_expert_intermediate_size, DeepSeek n_shared·moe_I). */
  intermediateSize: number;
  /** Qwen2-MoE: output scaled by sigmoid(x·w_gate) (shared_expert_gate, [1, H]); DeepSeek: not gated. */
  gated: boolean;
}

export interface MoeConfig {
  family: ModelFamily;
  /** Where the config came from (file path or URL), for error messages. */
  source: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Dense-FFN intermediate size (dense layers, or 0 if the model has none). */
  intermediateSize: number;
  /** Per-expert intermediate size. */
  moeIntermediateSize: number;
  numExperts: number;
  router: RouterConfig;
  sharedExpert: SharedExpertConfig | null;
  /** Per layer: true where the FFN is a MoE block, false where it is a dense MLP. */
  moeLayers: boolean[];
  rmsNormEps: number;
  ropeTheta: number;
  /** RoPE scaling (config rope_parameters / rope_scaling); absent: plain RoPE. */
  ropeScaling?: RopeScaling;
  maxPositions: number;
  /** Mixtral sliding-window attention span (tokens), or null for full causal attention. */
  slidingWindow: number | null;
  tieWordEmbeddings: boolean;
  /** q/k RMSNorm: OLMoE over the whole projection ('full'), Qwen3-MoE per head ('head'), or none. */
  qkNorm: 'none' | 'full' | 'head';
  attentionBias: boolean;
  /** Granite-MoE multipliers (1 elsewhere): embeddings ×, residual branch ×, attention scale, logits ÷. */
  embeddingMultiplier: number;
  residualMultiplier: number;
  /** Softmax scale for attention scores; 1/sqrt(headDim) unless the family overrides it. */
  attentionScale: number;
  logitsScaling: number;
  /** dtype the checkpoint stores its weights in (weights keep it in GPU memory). */
  weightDtype: WeightDtype;
  /** Only set for models the engine draws but cannot run, with the reason (e.g. a RoPE scaling type it lacks). */
  unsupported?: string;
  /**
   * DeepSeek-V2/V3 multi-head latent attention. When set, numHeads/headDim describe the query heads
   * (headDim = nope + rope) and numKvHeads is unused: the cache holds one latent + rope key per position.
   */
  mla?: MlaConfig;
}

/** Shapes of multi-head latent attention (DeepSeek q_lora_rank, kv_lora_rank, qk_nope/rope_head_dim, v_head_dim). */
export interface MlaConfig {
  /** Rank of the query down-projection (q_a_proj → q_a_layernorm → q_b_proj), or null for a plain q_proj. */
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  /** Rotary pairs (2i, 2i + 1) (V2's complex form; V3's rope_interleave, default true) instead of (i, i + d/2). */
  ropeInterleave: boolean;
}

/** Attention parameters of one MLA layer (DeepSeek-V2/V3 modules, without biases). */
function mlaParameters(c: MoeConfig, m: MlaConfig): number {
  const H = c.hiddenSize;
  const qHead = m.qkNopeHeadDim + m.qkRopeHeadDim;
  const q = m.qLoraRank === null
    ? H * c.numHeads * qHead
    : H * m.qLoraRank + m.qLoraRank + m.qLoraRank * c.numHeads * qHead; // q_a_proj, q_a_layernorm, q_b_proj
  const kv = H * (m.kvLoraRank + m.qkRopeHeadDim) + m.kvLoraRank + m.kvLoraRank * c.numHeads * (m.qkNopeHeadDim + m.vHeadDim);
  return q + kv + c.numHeads * m.vHeadDim * H; // + o_proj
}

export interface ParameterCounts {
  total: number;
  /** Parameters touched for one token: attention, norms, embeddings, router, k routed experts, shared experts. */
  activePerToken: number;
  embedding: number;
  attention: number;
  routedExperts: number;
  sharedExperts: number;
  router: number;
  dense: number;
  norms: number;
  lmHead: number;
}

/** Total vs active parameter counts, derived from the config alone. */
export function countParameters(c: MoeConfig): ParameterCounts {
  const H = c.hiddenSize;
  const embedding = c.vocabSize * H;
  const lmHead = c.tieWordEmbeddings ? 0 : c.vocabSize * H;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const attnBias = c.attentionBias ? qDim + 2 * kvDim : 0;
  const qkNorm = c.qkNorm === 'full' ? qDim + kvDim : c.qkNorm === 'head' ? 2 * c.headDim : 0;
  const attentionPerLayer = c.mla ? mlaParameters(c, c.mla) : H * qDim + 2 * H * kvDim + qDim * H + attnBias + qkNorm;
  const expertParams = 3 * H * c.moeIntermediateSize;
  const sharedParams = c.sharedExpert ? 3 * H * c.sharedExpert.intermediateSize + (c.sharedExpert.gated ? H : 0) : 0;
  const routerParams =
    c.numExperts * H + (c.router.hasBias ? c.numExperts : 0) + (c.router.hasCorrectionBias ? c.numExperts : 0);
  const denseParams = 3 * H * c.intermediateSize;
  let attention = 0, routedExperts = 0, sharedExperts = 0, router = 0, dense = 0, activeFfn = 0;
  for (const isMoe of c.moeLayers) {
    attention += attentionPerLayer;
    if (isMoe) {
      routedExperts += c.numExperts * expertParams;
      sharedExperts += sharedParams;
      router += routerParams;
      activeFfn += c.router.topK * expertParams + sharedParams + routerParams;
    } else {
      dense += denseParams;
      activeFfn += denseParams;
    }
  }
  const norms = c.numLayers * 2 * H + H;
  const total = embedding + lmHead + attention + routedExperts + sharedExperts + router + dense + norms;
  // Embedding lookup touches one row, but by convention (and as papers report it) active counts include it.
  const activePerToken = embedding + lmHead + attention + activeFfn + norms;
  return { total, activePerToken, embedding, attention, routedExperts, sharedExperts, router, dense, norms, lmHead };
}
