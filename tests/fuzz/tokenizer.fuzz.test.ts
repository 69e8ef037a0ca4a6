// Fuzzing tokenizer.json (+ tokenizer_config.json): the model, vocabulary, merges, added tokens and pipeline steps of
// two valid tokenizers (byte-level BPE, byte-fallback BPE with Metaspace) mutated, then a probe text encoded,
// decoded and shown piece by piece, as the app does right after loading.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { loadTokenizer, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE } from '../../src/io/tokenizer';
import { memoryFolder } from '../../src/io/source';
import { byteMutation, FUZZ_RUNS, fuzzParser, nastyJson, objectMutation } from './harness';

type Json = Record<string, unknown>;
const read = (dir: string, file: string) => JSON.parse(readFileSync(`tests/fixtures/${dir}/${file}`, 'utf8')) as Json;
const PROBE = 'The jury said: x => x + 1; café 🙂 <s>';

function tokenizerInput(dir: string): fc.Arbitrary<{ tokenizer: string; config: string }> {
  const tok = read(dir, TOKENIZER_FILE);
  const cfg = read(dir, TOKENIZER_CONFIG_FILE);
  const model = tok.model as Json;
  const vocab = model.vocab as Json;
  const vocabKeys = Object.keys(vocab);
  const added = tok.added_tokens as Json[];

  const modelEdit = fc.oneof(
    objectMutation(model, ['byte_fallback', 'unk_token', 'fuse_unk', 'dropout', 'continuing_subword_prefix']),
    fc.constantFrom('WordPiece', 'Unigram', 'WordLevel', 'BPE', 'bpe', '').map((type) => ({ ...model, type })),
    fc.array(fc.tuple(fc.constantFrom(...vocabKeys, '', '<unk>', '\u0000'), nastyJson), { minLength: 1, maxLength: 3 })
      .map((edits) => ({ ...model, vocab: { ...vocab, ...Object.fromEntries(edits) } })),
    fc.array(fc.oneof(nastyJson, fc.tuple(fc.constantFrom(...vocabKeys), fc.constantFrom(...vocabKeys)).map(([a, b]) => `${a} ${b}`)), { maxLength: 4 })
      .map((merges) => ({ ...model, merges: [...(model.merges as unknown[]).slice(0, 20), ...merges] })),
  );
  const addedEdit = fc.array(
    fc.record({ at: fc.nat({ max: added.length }), value: fc.oneof(nastyJson, fc.constant(null).chain(() => objectMutation(added[0]))) }),
    { minLength: 1, maxLength: 2 },
  ).map((edits) => {
    const list: unknown[] = [...added];
    for (const { at, value } of edits) list[at] = value;
    return list;
  });
  const tokenizer = fc.oneof(
    { weight: 3, arbitrary: modelEdit.map((m) => ({ ...tok, model: m })) },
    { weight: 2, arbitrary: addedEdit.map((a) => ({ ...tok, added_tokens: a })) },
    { weight: 2, arbitrary: objectMutation(tok) },
    { weight: 1, arbitrary: fc.constant(tok) },
  ).map((j) => JSON.stringify(j));
  const config = fc.oneof(
    { weight: 4, arbitrary: fc.constant(JSON.stringify(cfg)) },
    { weight: 2, arbitrary: objectMutation(cfg, ['bos_token', 'eos_token']).map((c) => JSON.stringify(c)) },
    { weight: 1, arbitrary: nastyJson.map((v) => JSON.stringify(v) ?? '') },
  );
  const damaged = byteMutation(new TextEncoder().encode(JSON.stringify(tok))).map((b) => new TextDecoder().decode(b));
  return fc.record({ tokenizer: fc.oneof({ weight: 8, arbitrary: tokenizer }, { weight: 1, arbitrary: damaged }), config });
}

async function loadAndUse(files: { tokenizer: string; config: string }): Promise<void> {
  const t = await loadTokenizer(memoryFolder({ [TOKENIZER_FILE]: files.tokenizer, [TOKENIZER_CONFIG_FILE]: files.config }));
  const ids = t.encode(PROBE);
  t.decode(ids);
  t.pieces(ids);
}

describe('fuzz: tokenizer.json', () => {
  // Building a tokenizer costs ~2 ms here, so the 10,000 inputs are split between the two kinds.
  for (const [dir, seed] of [['qwen2_moe', 0x70c1], ['mixtral', 0x70c2]] as const) {
    it(`${dir} tokenizer: accepted, or an error naming the file and the field`, async () => {
      const outcome = await fuzzParser({
        name: `${dir} tokenizer.json`, input: tokenizerInput(dir), files: [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE],
        seed, runs: Math.ceil(FUZZ_RUNS / 2), parse: loadAndUse,
      });
      expect(outcome.accepted).toBeGreaterThan(200);
      expect(outcome.rejected).toBeGreaterThan(200);
    });
  }
});
