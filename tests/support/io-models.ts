// Tiny synthetic Hugging Face model folders for the src/io tests: a config.json per family and a state dict with
// seeded non-trivial values, written by hand from transformers' module names (independently of src/io/weights.ts's
// tables), in either expert layout, as one file or shards, plus the canonical buffers the load plan must produce.
import { f32ToBf16, f32ToF16 } from '../../src/model/dtypes';
import type { WeightDtype } from '../../src/model/dtypes';
import type { ModelFamily } from '../../src/model/config';
import { encodeSafetensors } from '../../src/io/safetensors';
import type { TensorToWrite } from '../../src/io/safetensors';
import { randomF32 } from './random';

export type RunnableFamily = Exclude<ModelFamily, 'deepseek_v2' | 'deepseek_v3'>;
export const RUNNABLE_FAMILIES: RunnableFamily[] = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'granitemoe', 'gpt_oss'];

const TORCH: Record<WeightDtype, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };
const ST: Record<WeightDtype, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** Small configs with awkward sizes (hidden 12, 3 heads, 1 KV head, 5 experts, odd intermediates). */
export function tinyConfig(family: RunnableFamily, dtype: WeightDtype = 'f32'): Record<string, unknown> {
  const base = {
    model_type: family, vocab_size: 37, hidden_size: 12, num_hidden_layers: 3, num_attention_heads: 3,
    num_key_value_heads: 1, max_position_embeddings: 64, rms_norm_eps: 1e-6, torch_dtype: TORCH[dtype],
    tie_word_embeddings: false, hidden_act: 'silu',
  };
  switch (family) {
    case 'mixtral':
      return { ...base, intermediate_size: 7, num_local_experts: 5, num_experts_per_tok: 2, rope_theta: 1e6, sliding_window: null };
    case 'qwen2_moe':
      return {
        ...base, intermediate_size: 10, moe_intermediate_size: 7, shared_expert_intermediate_size: 9, num_experts: 5,
        num_experts_per_tok: 2, decoder_sparse_step: 1, mlp_only_layers: [1], norm_topk_prob: false, rope_theta: 1e6,
        use_sliding_window: false,
      };
    case 'qwen3_moe':
      // head_dim 6 ≠ hidden/heads (4): the explicit head_dim must win.
      return {
        ...base, head_dim: 6, intermediate_size: 10, moe_intermediate_size: 7, num_experts: 5, num_experts_per_tok: 3,
        decoder_sparse_step: 2, mlp_only_layers: [], norm_topk_prob: true, rope_parameters: { rope_type: 'default', rope_theta: 5e5 },
      };
    case 'olmoe':
      return { ...base, intermediate_size: 7, num_experts: 5, num_experts_per_tok: 2, clip_qkv: null, tie_word_embeddings: true };
    case 'granitemoe':
      return {
        ...base, intermediate_size: 7, num_local_experts: 5, num_experts_per_tok: 2, embedding_multiplier: 12,
        residual_multiplier: 0.22, attention_multiplier: 0.015625, logits_scaling: 6,
      };
    case 'gpt_oss':
      return {
        ...base, intermediate_size: 7, num_local_experts: 5, num_experts_per_tok: 2, sliding_window: 4, attention_bias: true,
        layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'], swiglu_limit: 7.0,
        rope_parameters: { rope_type: 'default', rope_theta: 150000 },
      };
  }
}

/** Little-endian bytes of `values` in `dtype`. */
export function encodeValues(values: Float32Array, dtype: WeightDtype): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const half = new Uint16Array(values.length);
  const conv = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < values.length; i++) half[i] = conv(values[i]);
  return new Uint8Array(half.buffer);
}

const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
};

export interface SynthModel {
  config: Record<string, unknown>;
  tensors: TensorToWrite[];
  /** Expected bytes of every load-plan entry, by canonical name (before 4-byte padding). */
  canonical: Map<string, Uint8Array>;
}

export interface SynthOptions {
  layout?: 'fused' | 'per-expert';
  dtype?: WeightDtype;
  seed?: number;
  /** Write Mixtral's MoE block as transformers 4 did ("block_sparse_moe") or 5 does ("mlp"). */
  mixtralBlock?: 'block_sparse_moe' | 'mlp';
  /** config.json fields to change before the tensors are made (e.g. an odd hidden_size). */
  overrides?: Record<string, unknown>;
}

/** A model's state dict with seeded values, and the canonical buffers a correct load plan yields. */
export function synthModel(family: RunnableFamily, options: SynthOptions = {}): SynthModel {
  const dtype = options.dtype ?? 'f32';
  const layout = family === 'granitemoe' ? 'fused' : (options.layout ?? 'fused');
  const config = { ...tinyConfig(family, dtype), ...options.overrides };
  let seed = options.seed ?? 1;
  const tensors: TensorToWrite[] = [];
  const canonical = new Map<string, Uint8Array>();
  const make = (shape: number[]): Uint8Array => encodeValues(randomF32(shape.reduce((a, b) => a * b, 1), seed++, 0.5), dtype);
  const put = (name: string, shape: number[], data = make(shape)) => {
    tensors.push({ name, dtype: ST[dtype], shape, data });
    return data;
  };

  const V = config.vocab_size as number, H = config.hidden_size as number, L = config.num_hidden_layers as number;
  const nH = config.num_attention_heads as number, nKV = config.num_key_value_heads as number;
  const d = (config.head_dim as number | undefined) ?? H / nH;
  const E = (config.num_local_experts ?? config.num_experts) as number;
  const I = (family === 'qwen2_moe' || family === 'qwen3_moe' ? config.moe_intermediate_size : config.intermediate_size) as number;
  // gpt-oss stores experts transposed with gate/up interleaved: built here from canonical values element by element.
  const values = (shape: number[]) => randomF32(shape.reduce((a, b) => a * b, 1), seed++, 0.5);

  canonical.set('embed', put('model.embed_tokens.weight', [V, H]));
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    canonical.set(`layers.${l}.inputNorm`, put(`${p}input_layernorm.weight`, [H]));
    canonical.set(`layers.${l}.postAttnNorm`, put(`${p}post_attention_layernorm.weight`, [H]));
    canonical.set(`layers.${l}.q`, put(`${p}self_attn.q_proj.weight`, [nH * d, H]));
    canonical.set(`layers.${l}.k`, put(`${p}self_attn.k_proj.weight`, [nKV * d, H]));
    canonical.set(`layers.${l}.v`, put(`${p}self_attn.v_proj.weight`, [nKV * d, H]));
    canonical.set(`layers.${l}.o`, put(`${p}self_attn.o_proj.weight`, [H, nH * d]));
    if (family === 'qwen2_moe') {
      canonical.set(`layers.${l}.qBias`, put(`${p}self_attn.q_proj.bias`, [nH * d]));
      canonical.set(`layers.${l}.kBias`, put(`${p}self_attn.k_proj.bias`, [nKV * d]));
      canonical.set(`layers.${l}.vBias`, put(`${p}self_attn.v_proj.bias`, [nKV * d]));
    }
    if (family === 'gpt_oss') {
      canonical.set(`layers.${l}.qBias`, put(`${p}self_attn.q_proj.bias`, [nH * d]));
      canonical.set(`layers.${l}.kBias`, put(`${p}self_attn.k_proj.bias`, [nKV * d]));
      canonical.set(`layers.${l}.vBias`, put(`${p}self_attn.v_proj.bias`, [nKV * d]));
      canonical.set(`layers.${l}.oBias`, put(`${p}self_attn.o_proj.bias`, [H]));
      canonical.set(`layers.${l}.attnSinks`, put(`${p}self_attn.sinks`, [nH]));
      canonical.set(`layers.${l}.router`, put(`${p}mlp.router.weight`, [E, H]));
      canonical.set(`layers.${l}.routerBias`, put(`${p}mlp.router.bias`, [E]));
      // Canonical gateUp [E, 2I, H] (gate rows, then up rows) and down [E, H, I]; stored gate_up_proj [E, H, 2I] with
      // column 2i = gate row i and 2i + 1 = up row i, down_proj [E, I, H], gate_up_proj_bias [E, 2I] interleaved.
      const gateUp = values([E, 2 * I, H]), down = values([E, H, I]), gateUpBias = values([E, 2 * I]);
      const storedGateUp = new Float32Array(E * H * 2 * I), storedDown = new Float32Array(E * I * H), storedBias = new Float32Array(E * 2 * I);
      for (let e = 0; e < E; e++) {
        for (let i = 0; i < I; i++) {
          for (const [half, col] of [[0, 2 * i], [1, 2 * i + 1]]) {
            const r = half * I + i;
            storedBias[e * 2 * I + col] = gateUpBias[e * 2 * I + r];
            for (let h = 0; h < H; h++) storedGateUp[(e * H + h) * 2 * I + col] = gateUp[(e * 2 * I + r) * H + h];
          }
          for (let h = 0; h < H; h++) storedDown[(e * I + i) * H + h] = down[(e * H + h) * I + i];
        }
      }
      canonical.set(`layers.${l}.expertsGateUp`, encodeValues(gateUp, dtype));
      canonical.set(`layers.${l}.expertsDown`, encodeValues(down, dtype));
      canonical.set(`layers.${l}.expertsGateUpBias`, encodeValues(gateUpBias, dtype));
      put(`${p}mlp.experts.gate_up_proj`, [E, H, 2 * I], encodeValues(storedGateUp, dtype));
      put(`${p}mlp.experts.down_proj`, [E, I, H], encodeValues(storedDown, dtype));
      put(`${p}mlp.experts.gate_up_proj_bias`, [E, 2 * I], encodeValues(storedBias, dtype));
      canonical.set(`layers.${l}.expertsDownBias`, put(`${p}mlp.experts.down_proj_bias`, [E, H]));
      continue;
    }
    if (family === 'olmoe') {
      canonical.set(`layers.${l}.qNorm`, put(`${p}self_attn.q_norm.weight`, [nH * d]));
      canonical.set(`layers.${l}.kNorm`, put(`${p}self_attn.k_norm.weight`, [nKV * d]));
    }
    if (family === 'qwen3_moe') {
      canonical.set(`layers.${l}.qNorm`, put(`${p}self_attn.q_norm.weight`, [d]));
      canonical.set(`layers.${l}.kNorm`, put(`${p}self_attn.k_norm.weight`, [d]));
    }
    const dense =
      (family === 'qwen2_moe' && (config.mlp_only_layers as number[]).includes(l)) ||
      (family === 'qwen3_moe' && (l + 1) % (config.decoder_sparse_step as number) !== 0);
    if (dense) {
      const Id = config.intermediate_size as number;
      const g = put(`${p}mlp.gate_proj.weight`, [Id, H]);
      const u = put(`${p}mlp.up_proj.weight`, [Id, H]);
      canonical.set(`layers.${l}.denseGateUp`, concat([g, u]));
      canonical.set(`layers.${l}.denseDown`, put(`${p}mlp.down_proj.weight`, [H, Id]));
      continue;
    }
    const block = family === 'granitemoe' ? 'block_sparse_moe' : family === 'mixtral' ? (options.mixtralBlock ?? 'block_sparse_moe') : 'mlp';
    const routerKey = family === 'granitemoe' ? `${p}${block}.router.layer.weight` : `${p}${block}.gate.weight`;
    canonical.set(`layers.${l}.router`, put(routerKey, [E, H]));
    // Expert weights are made per expert first; the fused tensors are their concatenation in transformers' order.
    const gates: Uint8Array[] = [], ups: Uint8Array[] = [], downs: Uint8Array[] = [];
    for (let e = 0; e < E; e++) {
      gates.push(make([I, H]));
      ups.push(make([I, H]));
      downs.push(make([H, I]));
    }
    const gateUp = concat(gates.flatMap((g, e) => [g, ups[e]]));
    const down = concat(downs);
    canonical.set(`layers.${l}.expertsGateUp`, gateUp);
    canonical.set(`layers.${l}.expertsDown`, down);
    if (family === 'granitemoe') {
      put(`${p}${block}.input_linear.weight`, [E, 2 * I, H], gateUp);
      put(`${p}${block}.output_linear.weight`, [E, H, I], down);
    } else if (layout === 'fused') {
      put(`${p}${block}.experts.gate_up_proj`, [E, 2 * I, H], gateUp);
      put(`${p}${block}.experts.down_proj`, [E, H, I], down);
    } else {
      const [w1, w3, w2] = family === 'mixtral' ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
      for (let e = 0; e < E; e++) {
        put(`${p}${block}.experts.${e}.${w1}.weight`, [I, H], gates[e]);
        put(`${p}${block}.experts.${e}.${w3}.weight`, [I, H], ups[e]);
        put(`${p}${block}.experts.${e}.${w2}.weight`, [H, I], downs[e]);
      }
    }
    if (family === 'qwen2_moe') {
      const Is = config.shared_expert_intermediate_size as number;
      const g = put(`${p}mlp.shared_expert.gate_proj.weight`, [Is, H]);
      const u = put(`${p}mlp.shared_expert.up_proj.weight`, [Is, H]);
      canonical.set(`layers.${l}.sharedGateUp`, concat([g, u]));
      canonical.set(`layers.${l}.sharedDown`, put(`${p}mlp.shared_expert.down_proj.weight`, [H, Is]));
      canonical.set(`layers.${l}.sharedGate`, put(`${p}mlp.shared_expert_gate.weight`, [1, H]));
    }
  }
  canonical.set('finalNorm', put('model.norm.weight', [H]));
  if (!config.tie_word_embeddings) canonical.set('lmHead', put('lm_head.weight', [V, H]));
  return { config, tensors, canonical };
}

/**
 * The model's files: config.json and model.safetensors, or `shards` shard files plus model.safetensors.index.json
 * (tensors dealt round-robin, so a layer's tensors span shards). Tensors are written in reverse order, so file order
 * differs from the plan's order.
 */
export function modelFiles(model: SynthModel, options: { shards?: number; extra?: Record<string, Uint8Array | string> } = {}): Record<string, Uint8Array | string> {
  const files: Record<string, Uint8Array | string> = { 'config.json': JSON.stringify(model.config), ...options.extra };
  const tensors = [...model.tensors].reverse();
  const n = options.shards ?? 1;
  if (n === 1) {
    files['model.safetensors'] = encodeSafetensors(tensors, { format: 'pt' });
    return files;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < n; s++) {
    const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const mine = tensors.filter((_, i) => i % n === s);
    for (const t of mine) weightMap[t.name] = name;
    files[name] = encodeSafetensors(mine, { format: 'pt' });
  }
  files['model.safetensors.index.json'] = JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap });
  return files;
}

// GPT-2's byte → unicode table, written out independently of src/io/tokenizer.ts (which inverts it).
export function byteToChar(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  return out;
}

/** A byte-level BPE (GPT-2 / Qwen / OLMoE style) with a few merges and one special token. */
export function byteLevelTokenizerJson() {
  const chars = byteToChar();
  const vocab: Record<string, number> = { '<|endoftext|>': 0 };
  chars.forEach((c, i) => (vocab[c] = i + 1));
  const merges = [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['l', 'l'], ['he', 'll'], ['â', 'Ĥ']];
  let id = 257;
  for (const [a, b] of merges) vocab[a + b] = id++;
  return {
    version: '1.0',
    added_tokens: [{ id: 0, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map((m) => m.join(' ')),
    },
  };
}
