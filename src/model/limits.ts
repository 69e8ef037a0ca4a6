// Limits of the model description that both the engine's buffers and the checkpoint checks (src/io) rely on.

/** Slots per token and layer in the routing record, whatever the current k (k ≤ K_MAX). */
export const K_MAX = 8;
/** Marks an empty slot (k smaller than K_MAX) or a dropped assignment in the routing record. */
export const NO_EXPERT = 0xffffffff;

/**
 * The largest models the app describes, with room to spare (DeepSeek-V3: 61 layers, 256 experts; Qwen3-235B: 94
 * layers). Per-layer and per-expert arrays (MoE layer flags, the layers × experts grid) are sized from the config
 * before anything is checked against a device, so a config.json past these is refused as it is read.
 */
export const MAX_LAYERS = 1024;
export const MAX_EXPERTS = 4096;
/** Token ids a tokenizer may use (the largest vocabularies have ~256k); checked before the tokenizer is built. */
export const MAX_VOCAB = 1 << 24;
