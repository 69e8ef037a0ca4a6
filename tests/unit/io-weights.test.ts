import { describe, expect, it } from 'vitest';
import type { WeightDtype } from '../../src/model/dtypes';
import { normalizeConfig } from '../../src/io/config';
import { ModelFileError, UnsupportedModelError } from '../../src/io/errors';
import { encodeSafetensors, openCheckpoint } from '../../src/io/safetensors';
import type { TensorToWrite } from '../../src/io/safetensors';
import { memoryFolder } from '../../src/io/source';
import { buildLoadPlan, bufferSize, planEntry, streamLoadPlan } from '../../src/io/weights';
import type { LoadPlan, PlanEntry } from '../../src/io/weights';
import type { Checkpoint } from '../../src/io/safetensors';
import { encodeValues, modelFiles, RUNNABLE_FAMILIES, synthModel } from '../support/io-models';
import type { RunnableFamily, SynthModel, SynthOptions } from '../support/io-models';
import { randomF32 } from '../support/random';

const SRC = 'models/tiny/config.json';

async function open(model: SynthModel, shards = 1) {
  const folder = memoryFolder(modelFiles(model, { shards }), 'models/tiny');
  const ckpt = await openCheckpoint(folder);
  const config = normalizeConfig(model.config, SRC);
  return { ckpt, config, plan: buildLoadPlan(config, ckpt) };
}

/** Streams a plan into per-entry buffers, checking every write is 4-byte aligned, bounded and in range. */
async function streamAll(ckpt: Checkpoint, plan: LoadPlan, chunkBytes: number) {
  const buffers = new Map<string, Uint8Array>();
  for (const e of plan.entries) buffers.set(e.name, new Uint8Array(bufferSize(e)).fill(0xee));
  const progress: number[] = [];
  const maxChunk = Math.max(4, Math.floor(chunkBytes / 4) * 4);
  await streamLoadPlan(ckpt, plan, (entry, dst, bytes) => {
    // Plain checks (no expect per call: thousands of calls with tiny chunks).
    if (dst % 4 || bytes.byteLength % 4 || bytes.byteLength > maxChunk || dst + bytes.byteLength > bufferSize(entry)) {
      throw new Error(`bad write to ${entry.name}: ${bytes.byteLength} bytes at ${dst} (buffer ${bufferSize(entry)}, chunk ${maxChunk})`);
    }
    buffers.get(entry.name)!.set(bytes, dst);
  }, { chunkBytes, onProgress: (done, total) => { if (total !== plan.totalBytes) throw new Error('bad total'); progress.push(done); } });
  expect(progress[progress.length - 1]).toBe(plan.totalBytes);
  expect(progress.every((d, i) => i === 0 || d >= progress[i - 1])).toBe(true);
  return buffers;
}

/** Every canonical buffer equals the expected bytes (zero-padded to 4), and nothing else is in the plan. */
function expectCanonical(plan: LoadPlan, buffers: Map<string, Uint8Array>, model: SynthModel) {
  expect(plan.entries.map((e) => e.name).sort()).toEqual([...model.canonical.keys()].sort());
  for (const [name, want] of model.canonical) {
    const padded = new Uint8Array(Math.ceil(want.byteLength / 4) * 4);
    padded.set(want);
    const got = buffers.get(name)!;
    if (!got.every((b, i) => b === padded[i])) throw new Error(`buffer ${name} differs from the expected canonical bytes`);
  }
}

describe('load plan: every family, both expert layouts, dtypes, shards', () => {
  const cases: [RunnableFamily, SynthOptions, number][] = [];
  for (const family of RUNNABLE_FAMILIES) {
    const fusedOnly = family === 'granitemoe' || family === 'gpt_oss';
    for (const layout of fusedOnly ? (['fused'] as const) : (['fused', 'per-expert'] as const)) {
      cases.push([family, { layout, dtype: 'f32' }, 1]);
    }
  }
  cases.push(['mixtral', { layout: 'per-expert', dtype: 'bf16' }, 3]);
  cases.push(['mixtral', { layout: 'fused', dtype: 'f16', mixtralBlock: 'mlp' }, 1]);
  cases.push(['mixtral', { layout: 'per-expert', dtype: 'f32', mixtralBlock: 'mlp' }, 2]);
  cases.push(['qwen2_moe', { layout: 'per-expert', dtype: 'bf16' }, 4]);
  cases.push(['olmoe', { layout: 'fused', dtype: 'f16' }, 2]);
  // hidden 9: norms [9] and vocab rows of odd length in f16 (18 bytes → buffers padded to 20).
  cases.push(['qwen3_moe', { layout: 'per-expert', dtype: 'f16', overrides: { hidden_size: 9, vocab_size: 31 } }, 1]);
  // gpt-oss's transposed, interleaved experts rearranged in 16-bit elements, across shards and odd chunk sizes.
  cases.push(['gpt_oss', { layout: 'fused', dtype: 'bf16' }, 3]);
  cases.push(['gpt_oss', { layout: 'fused', dtype: 'f16', overrides: { hidden_size: 9, head_dim: 4, vocab_size: 31 } }, 1]);

  for (const [family, options, shards] of cases) {
    const label = `${family} ${options.layout} ${options.dtype}${options.mixtralBlock ? ` ${options.mixtralBlock}` : ''}${options.overrides ? ` ${JSON.stringify(options.overrides)}` : ''}, ${shards} file(s)`;
    it(label, async () => {
      const model = synthModel(family, { ...options, seed: 11 });
      const { ckpt, config, plan } = await open(model, shards);
      expect(plan.dtype).toBe(options.dtype);
      expect(plan.unused).toEqual([]);
      expect(plan.tiedLmHead).toBe(config.tieWordEmbeddings);
      expect(plan.expertLayouts).toEqual(config.moeLayers.map((m) => (m ? (family === 'granitemoe' ? 'fused' : options.layout) : null)));
      expect(plan.totalBytes).toBe([...model.canonical.values()].reduce((s, b) => s + b.byteLength, 0));
      // 4-byte chunks once (f16 odd-length tensors then straddle chunks), else a small odd size and a large one.
      const chunks = options.overrides ? [4, 30, 1 << 20] : [30, 1 << 20];
      for (const chunk of chunks) expectCanonical(plan, await streamAll(ckpt, plan, chunk), model);
    });
  }

  it('the same weights in either layout give identical buffers', async () => {
    for (const family of ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe'] as const) {
      const fused = await open(synthModel(family, { layout: 'fused', seed: 5 }));
      const perExpert = await open(synthModel(family, { layout: 'per-expert', seed: 5 }), 2);
      const a = await streamAll(fused.ckpt, fused.plan, 64);
      const b = await streamAll(perExpert.ckpt, perExpert.plan, 64);
      expect([...a.keys()]).toEqual([...b.keys()]);
      for (const [k, v] of a) expect(b.get(k)).toEqual(v);
      const firstMoe = perExpert.config.moeLayers.indexOf(true);
      const e = planEntry(perExpert.plan, 'expertsGateUp', firstMoe)!;
      expect(e.parts.length).toBe(2 * 5); // gate and up of 5 experts, interleaved per expert
      expect(e.parts.map((p) => p.tensor.replace(/^.*experts\./, ''))).toEqual(
        family === 'mixtral'
          ? ['0.w1.weight', '0.w3.weight', '1.w1.weight', '1.w3.weight', '2.w1.weight', '2.w3.weight', '3.w1.weight', '3.w3.weight', '4.w1.weight', '4.w3.weight']
          : [0, 1, 2, 3, 4].flatMap((x) => [`${x}.gate_proj.weight`, `${x}.up_proj.weight`]),
      );
      expect(planEntry(fused.plan, 'expertsGateUp', firstMoe)!.parts.length).toBe(1);
    }
  });

  it('entry shapes, roles and part offsets', async () => {
    const { plan, config } = await open(synthModel('qwen2_moe', { layout: 'per-expert' }));
    const H = 12, E = 5, I = 7;
    const entry = (role: PlanEntry['role'], layer: number | null = null) => planEntry(plan, role, layer)!;
    expect(entry('embed').shape).toEqual([37, H]);
    expect(entry('expertsGateUp', 0).shape).toEqual([E, 2 * I, H]);
    expect(entry('expertsDown', 2).shape).toEqual([E, H, I]);
    expect(entry('sharedGateUp', 0).shape).toEqual([18, H]);
    expect(entry('sharedGate', 2).shape).toEqual([1, H]);
    expect(entry('denseGateUp', 1).shape).toEqual([20, H]);
    expect(planEntry(plan, 'router', 1)).toBeUndefined(); // layer 1 is dense
    expect(entry('qBias', 0).shape).toEqual([12]);
    expect(config.moeLayers).toEqual([true, false, true]);
    for (const e of plan.entries) {
      let at = 0;
      for (const p of e.parts) {
        expect(p.dstOffset).toBe(at);
        at += p.byteEnd - p.byteStart;
      }
      expect(at).toBe(e.byteLength);
      expect(e.byteLength).toBe(e.shape.reduce((a, b) => a * b, 1) * 4);
      expect(e.name).toBe(e.layer === null ? e.role : `layers.${e.layer}.${e.role}`);
    }
  });

  it('tied embeddings: no lmHead entry; a stray lm_head.weight is reported unused', async () => {
    const model = synthModel('olmoe');
    model.tensors.push({ name: 'lm_head.weight', dtype: 'F32', shape: [37, 12], data: encodeValues(randomF32(37 * 12, 3), 'f32') });
    model.tensors.push({ name: 'model.rotary_emb.inv_freq', dtype: 'F32', shape: [2], data: new Uint8Array(8) });
    const { plan } = await open(model);
    expect(plan.tiedLmHead).toBe(true);
    expect(planEntry(plan, 'lmHead')).toBeUndefined();
    expect(plan.unused).toEqual(['lm_head.weight', 'model.rotary_emb.inv_freq']);
  });

  it('small tensors are read through whole blocks of their file: a few reads, not one per tensor', async () => {
    const model = synthModel('qwen3_moe', { layout: 'per-expert', dtype: 'bf16', seed: 3, overrides: { num_experts: 64, decoder_sparse_step: 1 } });
    const folder = memoryFolder(modelFiles(model, { shards: 2 }), 'models/tiny');
    let reads = 0;
    const counted = {
      ...folder,
      open: async (name: string) => {
        const source = await folder.open(name);
        return Object.assign(Object.create(source), {
          read: (o: number, n: number) => (reads++, source.read(o, n)),
          stream: (o: number, n: number, c?: number) => (reads++, source.stream(o, n, c)),
        });
      },
    };
    const ckpt = await openCheckpoint(counted);
    const plan = buildLoadPlan(normalizeConfig(model.config, SRC), ckpt);
    const parts = plan.entries.reduce((n, e) => n + e.parts.length, 0);
    reads = 0;
    expectCanonical(plan, await streamAll(ckpt, plan, 1 << 16), model);
    expect(parts).toBeGreaterThan(500);
    expect(reads).toBeLessThanOrEqual(2 * Math.ceil(model.tensors.reduce((n, t) => n + t.data.byteLength, 0) / (1 << 16)) + 4);
  });

  it('streaming can be aborted', async () => {
    const { ckpt, plan } = await open(synthModel('mixtral'));
    const abort = new AbortController();
    let calls = 0;
    const reason = new DOMException('the user opened another model', 'AbortError');
    const load = streamLoadPlan(ckpt, plan, () => { if (++calls === 3) abort.abort(reason); }, { chunkBytes: 64, signal: abort.signal });
    // The caller's own abort comes back unchanged (the signal's reason), not dressed up as an error of a file.
    await expect(load).rejects.toBe(reason);
    expect(calls).toBe(3);
  });
});

describe('load plan: disagreements with config.json name the file, the tensor and expected vs found', () => {
  const replace = (model: SynthModel, name: string, t: Partial<TensorToWrite>) => {
    const i = model.tensors.findIndex((x) => x.name === name);
    expect(i).toBeGreaterThanOrEqual(0);
    model.tensors[i] = { ...model.tensors[i], ...t };
  };
  const remove = (model: SynthModel, pattern: RegExp) => {
    model.tensors = model.tensors.filter((t) => !pattern.test(t.name));
  };

  it('dtype disagreeing with torch_dtype', async () => {
    const model = synthModel('mixtral', { dtype: 'bf16' });
    replace(model, 'model.layers.1.block_sparse_moe.gate.weight', { dtype: 'F16' });
    await expect(open(model)).rejects.toThrow(
      `model.safetensors: tensor "model.layers.1.block_sparse_moe.gate.weight": dtype F16 but ${SRC} gives bf16 weights (torch_dtype or dtype; f32 when it names none) (expected BF16)`,
    );
  });

  it('shape disagreeing with the config, in a shard', async () => {
    const model = synthModel('mixtral', { layout: 'per-expert' });
    model.config.num_local_experts = 6;
    const err = await open(model, 3).catch((e) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err.message).toMatch(
      /^model-0000\d-of-00003\.safetensors: tensor "model\.layers\.0\.block_sparse_moe\.gate\.weight": shape \[5, 12\] but models\/tiny\/config\.json implies \[6, 12\] \(layer 0 router: num_experts × hidden_size\)$/,
    );
    const m2 = synthModel('qwen3_moe', { layout: 'fused' });
    m2.config.moe_intermediate_size = 8;
    await expect(open(m2)).rejects.toThrow(
      'model.safetensors: tensor "model.layers.1.mlp.experts.gate_up_proj": shape [5, 14, 12] but models/tiny/config.json implies [5, 16, 12]',
    );
    const m3 = synthModel('qwen3_moe');
    m3.config.head_dim = 4;
    await expect(open(m3)).rejects.toThrow('tensor "model.layers.0.self_attn.q_proj.weight": shape [18, 12] but models/tiny/config.json implies [12, 12]');
  });

  it('a transposed fused layout is refused by shape', async () => {
    const model = synthModel('olmoe', { layout: 'fused' });
    replace(model, 'model.layers.2.mlp.experts.down_proj', { shape: [5, 7, 12] });
    await expect(open(model)).rejects.toThrow('tensor "model.layers.2.mlp.experts.down_proj": shape [5, 7, 12] but models/tiny/config.json implies [5, 12, 7]');
  });

  it('missing tensors', async () => {
    const m1 = synthModel('mixtral');
    remove(m1, /^lm_head/);
    await expect(open(m1)).rejects.toThrow('model.safetensors: tensor "lm_head.weight": missing (LM head (tie_word_embeddings is false))');
    const m2 = synthModel('qwen2_moe', { layout: 'per-expert' });
    remove(m2, /layers\.2\.mlp\.experts\.3\.up_proj/);
    await expect(open(m2, 2)).rejects.toThrow('model.safetensors.index.json: tensor "model.layers.2.mlp.experts.3.up_proj.weight": missing (layer 2 expert 3 up)');
    const m3 = synthModel('mixtral', { layout: 'fused' });
    remove(m3, /experts/);
    await expect(open(m3)).rejects.toThrow(
      'model.safetensors: tensor "model.layers.0.block_sparse_moe.experts.gate_up_proj": missing (layer 0 experts: looked for "model.layers.0.block_sparse_moe.experts.gate_up_proj" or "model.layers.0.block_sparse_moe.experts.0.w1.weight")',
    );
    const m4 = synthModel('qwen2_moe');
    remove(m4, /shared_expert_gate/);
    await expect(open(m4)).rejects.toThrow('tensor "model.layers.0.mlp.shared_expert_gate.weight": missing (layer 0 shared_expert_gate)');
    const m5 = synthModel('qwen2_moe');
    m5.config.qkv_bias = false; // the checkpoint's biases are then unused, not an error
    expect((await open(m5)).plan.unused.filter((n) => n.endsWith('.bias')).length).toBe(9);
  });

  it('both expert layouts in one layer', async () => {
    const fused = synthModel('olmoe', { layout: 'fused' });
    const per = synthModel('olmoe', { layout: 'per-expert' });
    fused.tensors.push(...per.tensors.filter((t) => t.name.startsWith('model.layers.1.mlp.experts.')));
    await expect(open(fused)).rejects.toThrow(
      'model.safetensors: tensor "model.layers.1.mlp.experts.gate_up_proj": layer 1 stores its experts both fused and per expert',
    );
  });

  it('an unsupported dtype where a weight is expected', async () => {
    const model = synthModel('mixtral');
    replace(model, 'model.norm.weight', { dtype: 'I32' });
    await expect(open(model)).rejects.toThrow('model.safetensors: tensor "model.norm.weight": dtype I32 is not supported (the engine reads F32, F16 and BF16)');
  });

  it('models the engine cannot run are refused, unless only their FFN side is asked for', async () => {
    const model = synthModel('olmoe');
    model.config.clip_qkv = 8;
    await expect(open(model)).rejects.toThrow(UnsupportedModelError);
    await expect(open(model)).rejects.toThrow(`${SRC}: this model can be drawn in config-only mode but not run: field "clip_qkv": 8 is not implemented`);
  });
});

describe('DeepSeek load plans', () => {
  // Names as transformers' DeepseekV3 modules; layer 0 dense (first_k_dense_replace 1), layer 1 MoE.
  const H = 8, E = 8, I = 4, Id = 6, V = 11;
  const config = {
    model_type: 'deepseek_v3', vocab_size: V, hidden_size: H, intermediate_size: Id, moe_intermediate_size: I,
    num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, n_routed_experts: E, num_experts_per_tok: 2,
    n_group: 4, topk_group: 2, n_shared_experts: 1, first_k_dense_replace: 1, q_lora_rank: 4, kv_lora_rank: 4,
    qk_nope_head_dim: 2, qk_rope_head_dim: 2, v_head_dim: 2, dtype: 'float32',
  };
  let seed = 1;
  const t = (name: string, shape: number[]): TensorToWrite => ({
    name, dtype: 'F32', shape, data: encodeValues(randomF32(shape.reduce((a, b) => a * b, 1), seed++), 'f32' as WeightDtype),
  });
  const tensors = [
    t('model.embed_tokens.weight', [V, H]), t('model.norm.weight', [H]), t('lm_head.weight', [V, H]),
    t('model.layers.0.input_layernorm.weight', [H]), t('model.layers.0.post_attention_layernorm.weight', [H]),
    t('model.layers.0.self_attn.q_a_proj.weight', [4, H]),
    t('model.layers.0.mlp.gate_proj.weight', [Id, H]), t('model.layers.0.mlp.up_proj.weight', [Id, H]), t('model.layers.0.mlp.down_proj.weight', [H, Id]),
    t('model.layers.1.input_layernorm.weight', [H]), t('model.layers.1.post_attention_layernorm.weight', [H]),
    t('model.layers.1.self_attn.kv_a_proj_with_mqa.weight', [6, H]),
    t('model.layers.1.mlp.gate.weight', [E, H]), t('model.layers.1.mlp.gate.e_score_correction_bias', [E]),
    t('model.layers.1.mlp.experts.gate_up_proj', [E, 2 * I, H]), t('model.layers.1.mlp.experts.down_proj', [E, H, I]),
    t('model.layers.1.mlp.shared_experts.gate_proj.weight', [I, H]), t('model.layers.1.mlp.shared_experts.up_proj.weight', [I, H]),
    t('model.layers.1.mlp.shared_experts.down_proj.weight', [H, I]),
  ];

  it('FFN-only: routers with their correction bias, experts, shared and dense MLPs; attention is left unused', async () => {
    const ckpt = await openCheckpoint(memoryFolder({ 'model.safetensors': encodeSafetensors(tensors) }));
    const c = normalizeConfig(config, SRC);
    expect(() => buildLoadPlan(c, ckpt)).toThrow(UnsupportedModelError); // qk_rope_head_dim 2: not a multiple of 4
    const plan = buildLoadPlan(c, ckpt, { ffnOnly: true });
    expect(plan.ffnOnly).toBe(true);
    expect(plan.entries.map((e) => e.name)).toEqual([
      'embed', 'layers.0.inputNorm', 'layers.0.postAttnNorm', 'layers.0.denseGateUp', 'layers.0.denseDown',
      'layers.1.inputNorm', 'layers.1.postAttnNorm', 'layers.1.router', 'layers.1.routerCorrectionBias',
      'layers.1.expertsGateUp', 'layers.1.expertsDown', 'layers.1.sharedGateUp', 'layers.1.sharedDown', 'finalNorm', 'lmHead',
    ]);
    expect(plan.unused).toEqual(['model.layers.0.self_attn.q_a_proj.weight', 'model.layers.1.self_attn.kv_a_proj_with_mqa.weight']);
    expect(planEntry(plan, 'sharedGateUp', 1)!.shape).toEqual([2 * I, H]);
  });

  it('MLA: q_a/q_a_layernorm/q_b with a q_lora_rank, plain q_proj without; kv_a, kv_a_layernorm, kv_b, o; shapes checked', async () => {
    // 2 heads, q_lora_rank 4, kv_lora_rank 4, nope 2, rope 4, v 3.
    const mla = { ...config, qk_rope_head_dim: 4, v_head_dim: 3 };
    const attention = (l: number, qLora: boolean, kvB = [2 * (2 + 3), 4]) => [
      ...(qLora
        ? [t(`model.layers.${l}.self_attn.q_a_proj.weight`, [4, H]), t(`model.layers.${l}.self_attn.q_a_layernorm.weight`, [4]),
          t(`model.layers.${l}.self_attn.q_b_proj.weight`, [2 * 6, 4])]
        : [t(`model.layers.${l}.self_attn.q_proj.weight`, [2 * 6, H])]),
      t(`model.layers.${l}.self_attn.kv_a_proj_with_mqa.weight`, [4 + 4, H]), t(`model.layers.${l}.self_attn.kv_a_layernorm.weight`, [4]),
      t(`model.layers.${l}.self_attn.kv_b_proj.weight`, kvB), t(`model.layers.${l}.self_attn.o_proj.weight`, [H, 2 * 3]),
    ];
    const ffn = tensors.filter((x) => !x.name.includes('self_attn'));
    const plan = async (json: Record<string, unknown>, all: TensorToWrite[]) =>
      buildLoadPlan(normalizeConfig(json, SRC), await openCheckpoint(memoryFolder({ 'model.safetensors': encodeSafetensors(all) })));
    const withLora = await plan(mla, [...ffn, ...attention(0, true), ...attention(1, true)]);
    expect(withLora.unused).toEqual([]);
    expect(withLora.entries.filter((e) => e.layer === 0).map((e) => `${e.role} ${e.shape.join('x')}`).slice(2, 9)).toEqual([
      'qA 4x8', 'qANorm 4', 'qB 12x4', 'kvA 8x8', 'kvANorm 4', 'kvB 10x4', 'o 8x6',
    ]);
    const plain = await plan({ ...mla, q_lora_rank: null }, [...ffn, ...attention(0, false), ...attention(1, false)]);
    expect(planEntry(plain, 'q', 1)!.shape).toEqual([12, H]);
    await expect(plan(mla, [...ffn, ...attention(0, true), ...attention(1, true, [2 * (2 + 2), 4])])).rejects.toThrow(
      `model.safetensors: tensor "model.layers.1.self_attn.kv_b_proj.weight": shape [8, 4] but ${SRC} implies [10, 4] (layer 1 kv_b_proj: num_attention_heads·(qk_nope_head_dim + v_head_dim) × kv_lora_rank)`,
    );
  });
});
