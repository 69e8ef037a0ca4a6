// Fuzzing sharded checkpoints: model.safetensors.index.json mutated in structure and in bytes, shards damaged.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { INDEX_FILE, openCheckpoint } from '../../src/io/safetensors';
import { memoryFolder } from '../../src/io/source';
import { modelFiles, synthModel } from '../support/io-models';
import { byteMutation, fuzzParser, nastyJson, objectMutation } from './harness';

const files = modelFiles(synthModel('mixtral', { overrides: { num_hidden_layers: 1 } }), { shards: 3 });
const index = JSON.parse(files[INDEX_FILE] as string) as { weight_map: Record<string, string> };
const shards = Object.keys(files).filter((f) => f.endsWith('.safetensors'));
const tensors = Object.keys(index.weight_map);
const NAMES = [INDEX_FILE, ...shards];

const weightMapEdit = fc.array(
  fc.tuple(
    fc.oneof(fc.constantFrom(...tensors), fc.constantFrom('__proto__', 'toString', 'missing.weight', '')),
    fc.oneof(
      fc.constantFrom<unknown>(...shards, 'delete', '../model.safetensors', 'a/b.safetensors', '.', '..', '', 'model-00009-of-00003.safetensors', INDEX_FILE, 'config.json'),
      nastyJson,
    ),
  ),
  { minLength: 1, maxLength: 4 },
).map((edits) => {
  const map: Record<string, unknown> = { ...index.weight_map };
  for (const [tensor, shard] of edits) {
    if (shard === 'delete') delete map[tensor];
    else map[tensor] = shard;
  }
  return JSON.stringify({ ...index, weight_map: map });
});

const indexText = fc.oneof(
  { weight: 4, arbitrary: weightMapEdit },
  { weight: 2, arbitrary: objectMutation(index as unknown as Record<string, unknown>, ['metadata']).map((o) => JSON.stringify(o)) },
  { weight: 1, arbitrary: weightMapEdit.map((t) => new TextEncoder().encode(t)).chain(byteMutation).map((b) => new TextDecoder().decode(b)) },
  { weight: 1, arbitrary: nastyJson.map((v) => JSON.stringify(v) ?? '') },
);

const folderInput = fc.record({
  index: indexText,
  // Mostly intact shards, so the index's own checks are what is exercised.
  damaged: fc.oneof(
    { weight: 6, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom(...shards).chain((name) => byteMutation(files[name] as Uint8Array).map((b) => [name, b] as const)) },
  ),
  removed: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...shards) }),
});

describe('fuzz: sharded checkpoints', () => {
  it('index files and shards: accepted, or an error naming the index or a shard and the field', async () => {
    const outcome = await fuzzParser({
      name: 'sharded checkpoint',
      input: folderInput,
      files: NAMES,
      seed: 0x1dec5,
      parse: (m) => {
        const folder: Record<string, Uint8Array | string> = { ...files, [INDEX_FILE]: m.index };
        if (m.damaged) folder[m.damaged[0]] = m.damaged[1];
        if (m.removed) delete folder[m.removed];
        return openCheckpoint(memoryFolder(folder, 'model-dir'));
      },
    });
    expect(outcome.accepted).toBeGreaterThan(100);
    expect(outcome.rejected).toBeGreaterThan(5000);
    for (const f of ['header', 'field "weight_map"', 'tensor']) expect(outcome.fields.get(f) ?? 0, f).toBeGreaterThan(0);
  });
});
