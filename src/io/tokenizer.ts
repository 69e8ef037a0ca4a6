// Tokenizers from tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers, plus the text of each
// token on its own for display.
//
// Encoding and whole-sequence decoding are the library's. Per-token text is ours, because decoding one token of a
// multi-byte character through the library gives U+FFFD: we recover each token's bytes (byte-level BPE: the GPT-2
// byte↔unicode table; byte fallback: <0xNN> tokens and ▁ for space) and decode them as UTF-8, writing bytes that do
// not form whole characters as ⟨E2 80⟩. Everything returned is a plain string: put it in the page with textContent,
// never innerHTML (token text is arbitrary, e.g. "<script>").
import { Tokenizer } from '@huggingface/tokenizers';
import { MissingFileError, ModelFileError, TOP_LEVEL, field } from './errors';
import { readJson } from './source';
import type { ModelFolder } from './source';
import type { Tokenizer as TokenizerApi, TokenizerKind, TokenPiece } from '../model/tokenizer';
import { MAX_VOCAB } from '../model/limits';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

export type { TokenizerKind, TokenPiece } from '../model/tokenizer';

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 map to U+0100… in order.
const BYTE_OF_CHAR: ReadonlyMap<string, number> = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map = new Map<string, number>();
  let next = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCharCode(printable(b) ? b : 256 + next++), b);
  return map;
})();

/**
 * UTF-8 bytes as display text: whole characters decoded, every run of bytes that is not a whole, valid character
 * written as ⟨E2 80⟩ (upper-case hex, space-separated).
 */
export function displayBytes(bytes: Uint8Array): { text: string; partial: boolean } {
  let text = '';
  let bad: number[] = [];
  const flush = () => {
    if (bad.length) text += `⟨${bad.map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ')}⟩`;
    bad = [];
  };
  let partial = false;
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const len = b < 0x80 ? 1 : b >> 5 === 0b110 ? 2 : b >> 4 === 0b1110 ? 3 : b >> 3 === 0b11110 ? 4 : 0;
    let cp = -1;
    if (len > 0 && i + len <= bytes.length) {
      cp = len === 1 ? b : b & (0xff >> (len + 1));
      for (let k = 1; k < len; k++) {
        const c = bytes[i + k];
        if (c >> 6 !== 0b10) { cp = -1; break; }
        cp = (cp << 6) | (c & 0x3f);
      }
      // Reject overlong forms, surrogates and code points past U+10FFFF, as a strict decoder does.
      const min = [0, 0, 0x80, 0x800, 0x10000][len];
      if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) cp = -1;
    }
    if (cp >= 0) {
      flush();
      text += String.fromCodePoint(cp);
      i += len;
    } else {
      bad.push(b);
      partial = true;
      i++;
    }
  }
  flush();
  return { text, partial };
}

/** How an id the tokenizer lacks is shown everywhere (pieces, decoded text, exports). */
const missingToken = (id: number): string => `<id ${id}>`;

/** Does a (possibly Sequence-nested) pipeline component have a step of this type? */
function hasStep(component: unknown, type: string): boolean {
  if (typeof component !== 'object' || component === null) return false;
  const c = component as Record<string, unknown>;
  if (c.type === type) return true;
  for (const key of ['pretokenizers', 'decoders', 'normalizers', 'processors']) {
    const list = c[key];
    if (Array.isArray(list) && list.some((x) => hasStep(x, type))) return true;
  }
  return false;
}

/** The character a Metaspace pre-tokenizer/decoder (or a Replace ▁→space decoder) uses for spaces, if any. */
function metaspaceChar(json: Record<string, unknown>): string | null {
  const find = (component: unknown): string | null => {
    if (typeof component !== 'object' || component === null) return null;
    const c = component as Record<string, unknown>;
    if (c.type === 'Metaspace') return typeof c.replacement === 'string' ? c.replacement : '▁';
    if (c.type === 'Replace' && c.content === ' ') {
      const p = c.pattern as Record<string, unknown> | undefined;
      if (p && typeof p.String === 'string') return p.String;
    }
    for (const key of ['pretokenizers', 'decoders', 'normalizers']) {
      const list = c[key];
      if (Array.isArray(list)) for (const x of list) { const r = find(x); if (r) return r; }
    }
    return null;
  };
  return find(json.decoder) ?? find(json.pre_tokenizer) ?? null;
}

/** A token's content from tokenizer_config.json: "<s>" or {"content": "<s>", …}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>).content === 'string') {
    return (v as Record<string, unknown>).content as string;
  }
  return null;
}

/** Encoded and decoded once when a tokenizer is built: words, code, digits, multi-byte characters, a special-looking tag. */
const PROBE_TEXT = 'The jury said: x => x + 1; café 🙂 <s>';

const isTokenId = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < MAX_VOCAB;

/**
 * Token ids in the vocabulary and added tokens are integers in [0, MAX_VOCAB): checked before the library sees them,
 * since it sizes tables from the largest id and hands back whatever it was given as an id.
 */
function checkTokenIds(obj: Record<string, unknown>, source: string): void {
  const model = obj.model as Record<string, unknown>;
  const vocab = model.vocab;
  if (typeof vocab === 'object' && vocab !== null && !Array.isArray(vocab)) {
    for (const [token, id] of Object.entries(vocab)) {
      if (!isTokenId(id)) throw new ModelFileError(source, field(`model.vocab[${JSON.stringify(token)}]`), `${JSON.stringify(id)} is not a token id in [0, ${MAX_VOCAB})`);
    }
  }
  const added = obj.added_tokens;
  if (added === undefined || added === null) return;
  if (!Array.isArray(added)) throw new ModelFileError(source, field('added_tokens'), 'is not a list');
  added.forEach((t: unknown, i) => {
    const entry = (typeof t === 'object' && t !== null ? t : {}) as Record<string, unknown>;
    if (!isTokenId(entry.id)) throw new ModelFileError(source, field(`added_tokens[${i}].id`), `${JSON.stringify(entry.id)} is not a token id in [0, ${MAX_VOCAB})`);
    if (typeof entry.content !== 'string') throw new ModelFileError(source, field(`added_tokens[${i}].content`), 'is not a string');
  });
}

export class ModelTokenizer implements TokenizerApi {
  readonly kind: TokenizerKind;
  /** One more than the largest token id (vocabulary plus added tokens). */
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  private readonly tokenizer: Tokenizer;
  private readonly special: Set<number>;
  private readonly space: string | null;

  /**
   * `source` names tokenizer.json in messages. `config` is tokenizer_config.json's contents, or null if the folder
   * has none.
   */
  constructor(json: unknown, config: unknown, readonly source: string = TOKENIZER_FILE) {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelFileError(source, TOP_LEVEL, 'is not a JSON object');
    const obj = json as Record<string, unknown>;
    const model = obj.model as Record<string, unknown> | undefined;
    if (typeof model !== 'object' || model === null) throw new ModelFileError(source, field('model'), 'missing');
    if (typeof model.type !== 'string') throw new ModelFileError(source, field('model.type'), 'missing');
    if (config !== null && (typeof config !== 'object' || Array.isArray(config))) {
      throw new ModelFileError(TOKENIZER_CONFIG_FILE, TOP_LEVEL, 'is not a JSON object');
    }
    checkTokenIds(obj, source);
    let probe: number[];
    try {
      this.tokenizer = new Tokenizer(obj, (config ?? {}) as object);
      // The library accepts some pipelines it then cannot run: find out now, not on the user's first prompt.
      probe = this.tokenizer.encode(PROBE_TEXT).ids;
      this.tokenizer.decode(probe);
    } catch (e) {
      throw new ModelFileError(source, field('model.type'), `${model.type} tokenizer could not be built: ${(e as Error).message}`);
    }
    const stray = probe.findIndex((id) => !isTokenId(id) || this.tokenizer.id_to_token(id) === undefined);
    if (stray >= 0) {
      throw new ModelFileError(source, field('model'), `encodes text to token id ${String(probe[stray])}, which is not in its vocabulary (a merge whose result the vocabulary lacks?)`);
    }
    this.kind = hasStep(obj.pre_tokenizer, 'ByteLevel') || hasStep(obj.decoder, 'ByteLevel')
      ? 'byte-level'
      : model.byte_fallback === true ? 'byte-fallback' : 'text';
    this.space = this.kind === 'byte-level' ? null : metaspaceChar(obj);
    const added = this.tokenizer.get_added_tokens_decoder();
    this.special = new Set([...added.values()].filter((t) => t.special).map((t) => t.id));
    let maxId = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const cfg = (config ?? {}) as Record<string, unknown>;
    const idOf = (v: unknown) => {
      const content = tokenContent(v);
      return content === null ? null : (this.tokenizer.token_to_id(content) ?? null);
    };
    this.bosId = idOf(cfg.bos_token);
    this.eosId = idOf(cfg.eos_token);
  }

  /** Token ids of `text`; special tokens (e.g. BOS) added as the tokenizer's post-processor says, unless disabled. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /**
   * The text of a sequence (the library's decoder: spaces, byte fallback and merges handled across tokens). Ids the
   * tokenizer lacks (padding rows of a larger model vocabulary) are written as `<id N>` between the decoded runs.
   */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    let text = '';
    let run: number[] = [];
    const flush = () => {
      // The library refuses an empty list.
      if (run.length) text += this.tokenizer.decode(run, { skip_special_tokens: options.skipSpecialTokens ?? false });
      run = [];
    };
    for (const id of ids) {
      if (this.tokenOf(id) !== undefined) {
        run.push(id);
      } else {
        flush();
        text += missingToken(id);
      }
    }
    flush();
    return text;
  }

  /** One token on its own, for display (see TokenPiece). */
  piece(id: number): TokenPiece {
    const token = this.tokenOf(id);
    if (token === undefined) return { id, token: missingToken(id), text: missingToken(id), special: false, partial: false, missing: true };
    if (this.special.has(id)) return { id, token, text: token, special: true, partial: false, missing: false };
    const { text, partial } = displayBytes(this.bytesOf(token));
    return { id, token, text, special: false, partial, missing: false };
  }

  pieces(ids: readonly number[]): TokenPiece[] {
    return ids.map((id) => this.piece(id));
  }

  /** The bytes a token stands for (null for special tokens and missing ids): concatenated, the UTF-8 text. */
  tokenBytes(id: number): Uint8Array | null {
    const token = this.tokenOf(id);
    return token === undefined || this.special.has(id) ? null : this.bytesOf(token);
  }

  private bytesOf(token: string): Uint8Array {
    if (this.kind === 'byte-level') {
      const chars = [...token];
      const bytes = chars.map((ch) => BYTE_OF_CHAR.get(ch));
      // Added non-special tokens are stored as plain text, not in the byte alphabet.
      if (bytes.every((b) => b !== undefined)) return Uint8Array.from(bytes as number[]);
      return new TextEncoder().encode(token);
    }
    if (this.kind === 'byte-fallback') {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
    }
    return new TextEncoder().encode(this.space ? token.split(this.space).join(' ') : token);
  }

  /**
   * The vocabulary string of a token id, or undefined for a non-negative integer the tokenizer lacks (a model may
   * produce those). Anything else cannot be a token id and is an error.
   */
  private tokenOf(id: number): string | undefined {
    if (!Number.isInteger(id) || id < 0) throw new ModelFileError(this.source, null, `token id ${id} is not a token id (vocabulary size ${this.vocabSize})`);
    return this.tokenizer.id_to_token(id);
  }
}

/** Loads tokenizer.json (required) and tokenizer_config.json (optional) from a model folder. */
export async function loadTokenizer(folder: ModelFolder): Promise<ModelTokenizer> {
  if (!(await folder.has(TOKENIZER_FILE))) {
    throw new MissingFileError(TOKENIZER_FILE, folder.location, 'the model needs its tokenizer to turn text into token ids');
  }
  const json = await readJson(folder, TOKENIZER_FILE);
  const config = (await folder.has(TOKENIZER_CONFIG_FILE)) ? await readJson(folder, TOKENIZER_CONFIG_FILE) : null;
  return new ModelTokenizer(json, config, TOKENIZER_FILE);
}
