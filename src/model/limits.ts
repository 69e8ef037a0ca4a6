// Limits of the model description that both the engine's buffers and the checkpoint checks (src/io) rely on.

/** Slots per token and layer in the routing record, whatever the current k (k ≤ K_MAX). */
export const K_MAX = 8;
/** Marks an empty slot (k smaller than K_MAX) or a dropped assignment in the routing record. */
export const NO_EXPERT = 0xffffffff;
