// Per-layer uniform shared by the MoE routing kernels (moe_router, moe_reroute, moe_plan, moe_scatter, moe_combine).
// Field order and types must match MOE_LAYER_PARAMS in src/engine/kernels/moe-layout.ts (tests/unit/wgsl-structs.test.ts).
struct LayerParams {
  tokens: u32,          // T: tokens in this step
  position: u32,        // absolute position of token 0 (ring row, noise key)
  layer: u32,           // layer index (row of the [layers, experts] statistics)
  num_layers: u32,      // layers in the statistics buffers
  hidden: u32,          // H
  experts: u32,         // E (≤ 256)
  top_k: u32,           // effective k (≤ K_MAX = 8)
  scoring: u32,         // 0 = softmax, 1 = sigmoid
  norm_topk: u32,       // 1 = renormalise the chosen k weights to sum to 1
  has_bias: u32,        // 1 = add router bias (aux[0, e]) to the logits
  has_corr: u32,        // 1 = add correction bias (aux[1, e]) to the selection score only
  n_group: u32,         // expert groups for group-limited top-k (1 = off)
  topk_group: u32,      // groups kept
  group_score: u32,     // 0 = max of the group (DeepSeek-V2), 1 = sum of the group's top-2 (DeepSeek-V3)
  shared_mode: u32,     // 0 = no shared expert, 1 = ungated shared expert, 2 = sigmoid-gated (Qwen2-MoE)
  noise_seed: u32,      // seed of the logit noise
  scale: f32,           // routed_scaling_factor applied to the final gate weights
  noise_std: f32,       // σ of the Gaussian noise added to the logits (0 = off)
  inv_temp: f32,        // 1 / router temperature
  capacity: u32,        // per-expert capacity this step (0 = unlimited)
  reroute_ran: u32,     // 1 = moe_reroute ran this step (its per-expert drop / re-route counts are valid)
  tile_m: u32,          // rows per expert-matmul tile (the plan's tile list uses it)
  ring_capacity: u32,   // token positions the ring holds
  max_tokens: u32,      // rows of the scratch buffers
  mask_words: u32,      // words per expert in the membership bitmasks (ceil(max_tokens / 32))
  off_prefix: u32,      // plan-buffer offsets (words), see src/engine/kernels/moe-layout.ts
  off_header: u32,
  off_offsets: u32,
  off_kept: u32,
  off_tile_expert: u32,
  off_tile_row: u32,
  off_row_key: u32,
  off_drop_step: u32,
  off_reroute_step: u32,
  choice_offset: u32,   // offset (floats) of the choice scores in the probs scratch buffer
  off_mask_copy: u32,   // [experts, words] copy of the masks taken by moe_plan (which clears the masks)
  off_starts: u32,      // [experts] flattened prefix at each expert's first word
  off_partials: u32,    // per-block partials of the two-pass plan (moe_plan_partials → moe_plan_finish)
  residual_scale: f32,  // moe_combine with ACCUMULATE: out += residual_scale · (the layer's output)
  norm_eps: f32,        // moe_router with NORM: the input RMSNorm's epsilon
}

// Slots per token in the records and the ring, whatever k is.
const K_MAX: u32 = 8u;
// An empty slot, a dropped assignment, or "no row".
const NONE: u32 = 0xffffffffu;
// Per-token record in the records scratch buffer (u32 words; f32 values stored as bit patterns):
//   [0, 8) chosen expert per slot, [8, 16) gate weight, [16, 24) assigned expert (after capacity),
//   [24, 32) row in the expert-output buffer, 32 logsumexp of the router logits, 33 shared-expert gate logit,
//   34 non-finite flags (FLAG_*: the token was not routed in this layer).
const REC: u32 = 36u;
const REC_WEIGHT: u32 = 8u;
const REC_ASSIGNED: u32 = 16u;
const REC_ROW: u32 = 24u;
const REC_LSE: u32 = 32u;
const REC_SGATE: u32 = 33u;
const REC_FLAGS: u32 = 34u;
// Non-finite flags: a router logit (the layer's input activations · router weights) is NaN or ±Inf; a probability
// or selection score is (overflow in scoring).
const FLAG_LOGITS: u32 = 1u;
const FLAG_SCORES: u32 = 2u;
