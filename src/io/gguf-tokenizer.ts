// The tokenizer stored in GGUF metadata (tokenizer.ggml.*), built as a tokenizer.json object for
// @huggingface/tokenizers, so a GGUF file needs no tokenizer.json beside it.
//   model "gpt2": byte-level BPE: tokens, merges ("a b"), token_type; the pre-tokenizer regex is chosen by
//                 tokenizer.ggml.pre (the names llama.cpp uses: default/gpt-2/olmo → GPT-2's, qwen2 → Qwen2's).
//   model "llama": SentencePiece BPE with byte fallback: tokens, scores, token_type (6 = <0xNN> byte tokens); the
//                 merges are those of the file if it has them, else derived from the scores as SentencePiece's BPE
//                 applies them (a pair merges at the score of the piece it makes; higher scores first).
// token_type 3 (control) and 4 (user-defined) become added tokens (control ones special); bos/eos/unk ids name them.
import { ModelFileError, field } from './errors';
import type { GgufHeader, GgufValue } from './gguf';
import { ModelTokenizer } from './tokenizer';

const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// GPT-2's regex is ByteLevel's own (use_regex); Qwen2's splits digits singly and keeps newlines apart.
const PRE_TOKENIZERS: Readonly<Record<string, unknown>> = {
  default: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  'gpt-2': { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  olmo: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  qwen2: {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: QWEN2_REGEX }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  },
};

const CONTROL = 3;
const USER_DEFINED = 4;
const BYTE = 6;

/** The tokenizer of a GGUF file; errors name the file and the tokenizer.ggml key. */
export function ggufTokenizer(h: GgufHeader): ModelTokenizer {
  const fail = (key: string, detail: string): never => {
    throw new ModelFileError(h.file, field(key), detail);
  };
  const get = (key: string): GgufValue | undefined => h.metadata.get(key);
  const strings = (key: string, required: boolean): string[] | null => {
    const v = get(key);
    if (v === undefined) return required ? fail(key, 'missing (the file has no tokenizer)') : null;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return fail(key, 'expected an array of strings');
    return v as string[];
  };
  const numbers = (key: string, length: number): number[] | null => {
    const v = get(key);
    if (v === undefined) return null;
    if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number')) {
      return fail(key, `expected ${length} numbers, one per token`);
    }
    return v as number[];
  };
  const id = (key: string, count: number): number | null => {
    const v = get(key);
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= count) return fail(key, `expected a token id below ${count}, found ${String(v)}`);
    return v;
  };

  const kind = get('tokenizer.ggml.model');
  if (kind !== 'gpt2' && kind !== 'llama') fail('tokenizer.ggml.model', `"${String(kind)}" is not supported (gpt2 and llama are)`);
  const tokens = strings('tokenizer.ggml.tokens', true)!;
  const types = numbers('tokenizer.ggml.token_type', tokens.length) ?? tokens.map(() => 1);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => { if (!Object.hasOwn(vocab, t)) vocab[t] = i; });
  const added = tokens.flatMap((content, i) =>
    types[i] === CONTROL || types[i] === USER_DEFINED
      ? [{ id: i, content, special: types[i] === CONTROL, single_word: false, lstrip: false, rstrip: false, normalized: types[i] === USER_DEFINED }]
      : []);
  const bos = id('tokenizer.ggml.bos_token_id', tokens.length);
  const eos = id('tokenizer.ggml.eos_token_id', tokens.length);
  const unk = id('tokenizer.ggml.unknown_token_id', tokens.length);
  const addBos = get('tokenizer.ggml.add_bos_token') === true || (kind === 'llama' && get('tokenizer.ggml.add_bos_token') === undefined);
  let merges = strings('tokenizer.ggml.merges', false);

  let json: Record<string, unknown>;
  if (kind === 'gpt2') {
    if (!merges) fail('tokenizer.ggml.merges', 'missing (a gpt2 tokenizer needs its merges)');
    const pre = get('tokenizer.ggml.pre') ?? 'default';
    if (typeof pre !== 'string' || !Object.hasOwn(PRE_TOKENIZERS, pre)) {
      fail('tokenizer.ggml.pre', `"${String(pre)}" is not supported (${Object.keys(PRE_TOKENIZERS).join(', ')} are)`);
    }
    json = {
      model: { type: 'BPE', vocab, merges, byte_fallback: false, ignore_merges: false },
      pre_tokenizer: PRE_TOKENIZERS[pre as string],
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    };
  } else {
    if (!merges) {
      const scores = numbers('tokenizer.ggml.scores', tokens.length) ?? fail('tokenizer.ggml.scores', 'missing (a llama tokenizer without merges needs scores)');
      merges = mergesFromScores(tokens, scores, types);
    }
    json = {
      model: { type: 'BPE', vocab, merges, byte_fallback: true, fuse_unk: true, unk_token: unk === null ? null : tokens[unk], ignore_merges: false },
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true },
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          { type: 'Strip', content: ' ', start: 1, stop: 0 },
        ],
      },
    };
  }
  json.added_tokens = added;
  json.normalizer = null;
  json.post_processor = null;
  if (addBos && bos !== null) {
    json.post_processor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [tokens[bos]]: { id: tokens[bos], ids: [bos], tokens: [tokens[bos]] } },
    };
  }
  const config = { bos_token: bos === null ? null : tokens[bos], eos_token: eos === null ? null : tokens[eos] };
  return new ModelTokenizer(json, config, `${h.file} (tokenizer.ggml.*)`);
}

/**
 * SentencePiece BPE merges implied by piece scores: every split of a normal piece into two pieces of the vocabulary,
 * ranked by the score of the piece it makes (higher first), ties by the ids of the two halves.
 */
function mergesFromScores(tokens: string[], scores: number[], types: number[]): string[] {
  const index = new Map<string, number>();
  tokens.forEach((t, i) => { if (types[i] !== CONTROL && types[i] !== BYTE && !index.has(t)) index.set(t, i); });
  const found: { left: string; right: string; score: number; l: number; r: number }[] = [];
  for (const [piece, i] of index) {
    const chars = [...piece];
    for (let s = 1; s < chars.length; s++) {
      const left = chars.slice(0, s).join('');
      const right = chars.slice(s).join('');
      const l = index.get(left);
      const r = index.get(right);
      if (l !== undefined && r !== undefined) found.push({ left, right, score: scores[i], l, r });
    }
  }
  found.sort((a, b) => b.score - a.score || a.l - b.l || a.r - b.r);
  return found.map((m) => `${m.left} ${m.right}`);
}
