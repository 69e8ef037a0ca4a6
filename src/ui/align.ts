// Token → character alignment, to give each token of a sample the label of the word it starts in (part of speech
// for prose). Tokens carry display text only (src/io/tokenizer.ts): this walks the text with it. Special tokens
// (not in the text) get no offset; pieces of an incomplete UTF-8 character (shown as ⟨E2 80⟩) belong to the
// character at the cursor; a leading space the tokenizer adds (Llama's ▁ prefix) is allowed for.

/** Character offset in `text` where each token starts, or null for tokens not found in the text. */
export function alignTokens(text: string, pieces: readonly string[]): (number | null)[] {
  const out: (number | null)[] = [];
  let cursor = 0;
  for (const piece of pieces) {
    if (piece.length === 0) {
      out.push(cursor < text.length ? cursor : null);
      continue;
    }
    if (text.startsWith(piece, cursor)) {
      out.push(cursor);
      cursor += piece.length;
    } else if (piece.length > 1 && piece[0] === ' ' && text.startsWith(piece.slice(1), cursor)) {
      out.push(cursor);
      cursor += piece.length - 1;
    } else if (piece.includes('⟨')) {
      // Bytes of a character split over tokens: the character at the cursor; the next whole piece skips past it.
      out.push(cursor < text.length ? cursor : null);
    } else {
      // A little slack (a multi-unit character consumed by byte pieces, spacing the tokenizer normalised).
      const found = text.indexOf(piece, cursor);
      if (found >= 0 && found - cursor <= 4) {
        out.push(found);
        cursor = found + piece.length;
      } else {
        out.push(null);
      }
    }
  }
  return out;
}

export interface LabelledSpan {
  start: number;
  end: number;
  label: string;
}

/**
 * The label of the span that holds the token's first non-space character (the token's own offset when it is all
 * space), or null when no span does.
 */
export function labelAt(text: string, offset: number | null, spans: readonly LabelledSpan[]): string | null {
  if (offset === null) return null;
  let at = offset;
  while (at < text.length && /\s/.test(text[at])) at++;
  if (at >= text.length) return null;
  for (const s of spans) if (at >= s.start && at < s.end) return s.label;
  return null;
}
