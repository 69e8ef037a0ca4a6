import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MissingFileError, ModelFileError } from '../../src/io/errors';
import { memoryFolder } from '../../src/io/source';
import { displayBytes, loadTokenizer, ModelTokenizer } from '../../src/io/tokenizer';
import { byteLevelTokenizerJson as byteLevelJson } from '../support/io-models';

/** A Llama/Mixtral-style BPE: ▁ for spaces, <0xNN> byte fallback, <s> prepended by the post-processor. */
function byteFallbackJson() {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let id = 3;
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = id++;
  for (const c of ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 't', '<', '>', 's', 'c', 'i', 'p']) vocab[c] = id++;
  const merges = [['▁', 'h'], ['e', 'l'], ['▁h', 'el'], ['l', 'o']];
  for (const [a, b] of merges) vocab[a + b] = id++;
  const special = (i: number, content: string) => ({ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: merges.map((m) => m.join(' ')),
    },
  };
}

const utf8 = (s: string) => new TextEncoder().encode(s);
const cat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
};

describe('displayBytes', () => {
  it('whole characters as text, the rest as ⟨hex⟩', () => {
    expect(displayBytes(utf8('héllo €'))).toEqual({ text: 'héllo €', partial: false });
    expect(displayBytes(Uint8Array.of(0x20, 0xe2, 0x80))).toEqual({ text: ' ⟨E2 80⟩', partial: true });
    expect(displayBytes(Uint8Array.of(0xac, 0x41))).toEqual({ text: '⟨AC⟩A', partial: true });
    expect(displayBytes(Uint8Array.of(0xc0, 0x80))).toEqual({ text: '⟨C0 80⟩', partial: true }); // overlong NUL
    expect(displayBytes(Uint8Array.of(0xed, 0xa0, 0x80))).toEqual({ text: '⟨ED A0 80⟩', partial: true }); // surrogate
    expect(displayBytes(Uint8Array.of(0xf4, 0x90, 0x80, 0x80))).toEqual({ text: '⟨F4 90 80 80⟩', partial: true }); // > U+10FFFF
    expect(displayBytes(Uint8Array.of(0xf0, 0x9f, 0x99, 0x82))).toEqual({ text: '🙂', partial: false });
    expect(displayBytes(new Uint8Array(0))).toEqual({ text: '', partial: false });
  });

  it('agrees with a strict UTF-8 decoder on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (bytes) => {
        const { text, partial } = displayBytes(bytes);
        let valid = true;
        try { new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { valid = false; }
        expect(partial).toBe(!valid);
        if (valid) expect(text).toBe(new TextDecoder().decode(bytes));
      }),
      { numRuns: 2000 },
    );
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 10 }), (s) => {
      expect(displayBytes(utf8(s))).toEqual({ text: s, partial: false });
    }));
  });
});

describe('byte-level BPE', () => {
  const tok = new ModelTokenizer(byteLevelJson(), null);

  it('encodes with the merges, decodes back, and shows each token on its own', () => {
    expect(tok.kind).toBe('byte-level');
    const ids = tok.encode('hello the “€”<|endoftext|>');
    expect(ids[0]).toBe(261); // "hell"
    expect(ids[ids.length - 1]).toBe(0);
    expect(tok.decode(ids)).toBe('hello the “€”<|endoftext|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hello the “€”');
    const pieces = tok.pieces(ids);
    expect(pieces.map((p) => p.text)).toEqual(['hell', 'o', ' the', ' ', '⟨E2⟩', '⟨80⟩', '⟨9C⟩', '⟨E2 82⟩', '⟨AC⟩', '⟨E2⟩', '⟨80⟩', '⟨9D⟩', '<|endoftext|>']);
    expect(pieces[2]).toEqual({ id: 259, token: 'Ġthe', text: ' the', special: false, partial: false, missing: false });
    expect(pieces[7]).toMatchObject({ token: 'âĤ', partial: true });
    expect(pieces[12]).toMatchObject({ special: true, text: '<|endoftext|>' });
  });

  it('token bytes concatenate to the UTF-8 of any text', () => {
    fc.assert(
      // Any code points (the library's encode takes ~2 ms on astral-plane text, so short strings, 60 runs).
      fc.property(fc.string({ unit: 'binary', maxLength: 10 }), (s) => {
        const clean = s.replace(/<\|endoftext\|>/g, '');
        const ids = tok.encode(clean);
        expect(cat(ids.map((id) => tok.tokenBytes(id)!))).toEqual(utf8(clean));
        expect(tok.decode(ids)).toBe(clean);
      }),
      { numRuns: 60 },
    );
  });

  it('markup-like text stays plain text', () => {
    const ids = tok.encode('<script>');
    expect(tok.pieces(ids).map((p) => p.text).join('')).toBe('<script>');
  });
});

describe('byte-fallback BPE (Llama style)', () => {
  const tok = new ModelTokenizer(byteFallbackJson(), { bos_token: '<s>', eos_token: { content: '</s>' } });

  it('▁ becomes a space, <0xNN> tokens are bytes, BOS comes from the post-processor', () => {
    expect(tok.kind).toBe('byte-fallback');
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    const ids = tok.encode('hello world €');
    expect(ids[0]).toBe(1);
    const pieces = tok.pieces(ids);
    expect(pieces.map((p) => p.text)).toEqual(['<s>', ' hel', 'lo', ' ', 'w', 'o', 'r', 'l', 'd', ' ', '⟨E2⟩', '⟨82⟩', '⟨AC⟩']);
    expect(pieces[10]).toMatchObject({ token: '<0xE2>', partial: true });
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hello world €');
    expect(tok.encode('hello', { addSpecialTokens: false })[0]).not.toBe(1);
    expect(cat(ids.slice(1).map((id) => tok.tokenBytes(id)!))).toEqual(utf8(' hello world €'));
    expect(tok.tokenBytes(1)).toBeNull();
  });

  it('ids the tokenizer lacks (a padded model vocabulary) are shown as <id N>; non-ids are an error naming the file', () => {
    expect(tok.vocabSize).toBe(278);
    expect(tok.piece(278)).toEqual({ id: 278, token: '<id 278>', text: '<id 278>', special: false, partial: false, missing: true });
    expect(tok.piece(99999).text).toBe('<id 99999>');
    expect(tok.piece(5).missing).toBe(false);
    expect(tok.tokenBytes(300)).toBeNull();
    const ids = tok.encode('hello world', { addSpecialTokens: false });
    const known = tok.decode(ids);
    expect(tok.decode([...ids, 300, ...ids])).toBe(`${known}<id 300>${tok.decode(ids)}`);
    expect(tok.decode([300, 1, 281], { skipSpecialTokens: true })).toBe('<id 300><id 281>');
    expect(() => tok.decode([1, -1])).toThrow('tokenizer.json: token id -1 is not a token id');
    expect(() => tok.piece(2.5)).toThrow('token id 2.5 is not a token id');
  });
});

describe('loading from a folder', () => {
  it('tokenizer.json with and without tokenizer_config.json', async () => {
    const withConfig = await loadTokenizer(memoryFolder({
      'tokenizer.json': JSON.stringify(byteFallbackJson()),
      'tokenizer_config.json': JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }),
    }));
    expect(withConfig.eosId).toBe(2);
    const without = await loadTokenizer(memoryFolder({ 'tokenizer.json': JSON.stringify(byteLevelJson()) }));
    expect(without.bosId).toBeNull();
    expect(without.decode(without.encode('the hell'))).toBe('the hell');
  });

  it('a missing or broken tokenizer names the file', async () => {
    await expect(loadTokenizer(memoryFolder({ 'config.json': '{}' }, 'models/m'))).rejects.toThrow(MissingFileError);
    await expect(loadTokenizer(memoryFolder({ 'config.json': '{}' }, 'models/m'))).rejects.toThrow(
      'tokenizer.json: not found in models/m (the model needs its tokenizer to turn text into token ids)',
    );
    await expect(loadTokenizer(memoryFolder({ 'tokenizer.json': '{"model": ' }))).rejects.toThrow(/^tokenizer\.json: JSON syntax: invalid JSON/);
    await expect(loadTokenizer(memoryFolder({ 'tokenizer.json': '{"version": "1.0"}' }))).rejects.toThrow('tokenizer.json: field "model": missing');
    await expect(loadTokenizer(memoryFolder({ 'tokenizer.json': '{"model": {"vocab": {}}}' }))).rejects.toThrow('tokenizer.json: field "model.type": missing');
    await expect(loadTokenizer(memoryFolder({ 'tokenizer.json': '{"model": {"type": "Magic"}}' }))).rejects.toThrow(ModelFileError);
    await expect(loadTokenizer(memoryFolder({ 'tokenizer.json': '{"model": {"type": "Magic"}}' }))).rejects.toThrow(/^tokenizer\.json: field "model\.type": Magic tokenizer could not be built/);
    await expect(loadTokenizer(memoryFolder({ 'tokenizer.json': JSON.stringify(byteLevelJson()), 'tokenizer_config.json': '[]' }))).rejects.toThrow(
      'tokenizer_config.json: top level: is not a JSON object',
    );
  });

  it('token ids outside the vocabulary are refused when the tokenizer is built (found by fuzzing)', () => {
    // Before: a huge id made the library build tables for minutes; a fractional one came back from encode() as an id.
    const withVocab = (token: string, id: unknown) => {
      const json = byteLevelJson() as { model: { vocab: Record<string, unknown> } };
      json.model.vocab[token] = id;
      return () => new ModelTokenizer(json, null);
    };
    expect(withVocab('zz', 2 ** 40)).toThrow(`tokenizer.json: field "model.vocab["zz"]": ${2 ** 40} is not a token id in [0, 16777216)`);
    expect(withVocab('T', 0.5)).toThrow('field "model.vocab["T"]": 0.5 is not a token id');
    const added = byteLevelJson() as { added_tokens: unknown[] };
    added.added_tokens = [{ id: -1, content: '<x>' }];
    expect(() => new ModelTokenizer(added, null)).toThrow('tokenizer.json: field "added_tokens[0].id": -1 is not a token id');
  });
});
