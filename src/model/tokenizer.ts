// What the engine and the UI need of a tokenizer. src/io/tokenizer.ts implements it from tokenizer.json; the engine
// keeps one beside a loaded model without depending on how it was read.

/** How a token's vocabulary string maps to bytes. */
export type TokenizerKind = 'byte-level' | 'byte-fallback' | 'text';

export interface TokenPiece {
  id: number;
  /** The vocabulary string, as in tokenizer.json ("Ġthe", "▁the", "<0xE2>", "<|endoftext|>"). */
  token: string;
  /** What the token stands for: decoded bytes, with incomplete UTF-8 written as ⟨E2 80⟩. Plain text, not HTML. */
  text: string;
  /** An added special token (BOS, EOS, …): `text` is its content. */
  special: boolean;
  /** The token's bytes are not whole UTF-8 characters (part of `text` is ⟨..⟩ escapes). */
  partial: boolean;
  /**
   * The tokenizer has no such id: a padding row of a model vocabulary larger than its tokenizer's (Qwen's config says
   * 151936, its tokenizer has 151665). `token` and `text` are `<id N>`.
   */
  missing: boolean;
}

export interface Tokenizer {
  readonly kind: TokenizerKind;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** File the vocabulary came from, for messages. */
  readonly source: string;
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  piece(id: number): TokenPiece;
  pieces(ids: readonly number[]): TokenPiece[];
  /** Null for special tokens and for ids the tokenizer lacks. */
  tokenBytes(id: number): Uint8Array | null;
}
