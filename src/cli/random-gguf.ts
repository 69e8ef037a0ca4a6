// Writes a random-weight GGUF file at a published MoE shape, for the Node tokens/s benchmark on machines without
// Python packages (src/cli/bench-model.ts --model DIR reads it like any GGUF folder).
//
//   npx tsx src/cli/random-gguf.ts --out DIR [--layers N] [--format q4_k]
//
// Shape: Qwen3-30B-A3B (qwen3moe: hidden 2048, 48 layers, 32 query / 4 KV heads of 128, 128 experts of 768, k 8,
// vocabulary 151936). Matrices in --format blocks (Q4_K by default; the output projection Q6_K as llama.cpp's Q4_K_M
// keeps it), norms and routers F32. Block bytes are random with small finite scales (src/bench/quant-operands.ts):
// one 4 MB chunk repeated, which is fine for timing, not for text. Tokenizer: 256 byte tokens, one merge (the
// benchmark feeds synthetic ids). Written as GGUF v3 (layout in src/io/gguf.ts) tensor by tensor.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { QUANT_BLOCKS, isQuantFormat, tensorBytes, type TensorFormat } from '../model/dtypes';
import { GGML_FORMATS } from '../io/gguf';
import { randomQuantBlocks } from '../bench/quant-operands';

const ALIGN = 32;
const GGML_TYPE = Object.fromEntries(Object.entries(GGML_FORMATS).map(([id, f]) => [f, Number(id)])) as Record<TensorFormat, number>;

/** Little-endian GGUF header bytes. */
class HeaderBytes {
  private parts: Uint8Array[] = [];
  private readonly enc = new TextEncoder();
  get length(): number {
    return this.parts.reduce((s, p) => s + p.length, 0);
  }
  private num(bytes: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(bytes);
    set(new DataView(b.buffer));
    this.parts.push(b);
  }
  u32(v: number): void { this.num(4, (d) => d.setUint32(0, v, true)); }
  u64(v: number): void { this.num(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  f32(v: number): void { this.num(4, (d) => d.setFloat32(0, v, true)); }
  str(s: string): void {
    const b = this.enc.encode(s);
    this.u64(b.length);
    this.parts.push(b);
  }
  /** A metadata entry: key, value type (4 u32, 6 f32, 8 string, 9 array of strings). */
  kv(key: string, value: number | string | string[], type: 'u32' | 'f32' = 'u32'): void {
    this.str(key);
    if (Array.isArray(value)) {
      this.u32(9);
      this.u32(8);
      this.u64(value.length);
      for (const s of value) this.str(s);
    } else if (typeof value === 'string') {
      this.u32(8);
      this.str(value);
    } else if (type === 'f32') {
      this.u32(6);
      this.f32(value);
    } else {
      this.u32(4);
      this.u32(value);
    }
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

interface Tensor {
  name: string;
  /** Row-major shape (the last dimension is the row). */
  shape: number[];
  format: TensorFormat;
}

function qwen3Tensors(layers: number, f: TensorFormat): Tensor[] {
  const [H, heads, kv, d, E, I, V] = [2048, 32, 4, 128, 128, 768, 151936];
  const t: Tensor[] = [{ name: 'token_embd.weight', shape: [V, H], format: f }];
  for (let l = 0; l < layers; l++) {
    const b = `blk.${l}.`;
    t.push(
      { name: `${b}attn_norm.weight`, shape: [H], format: 'f32' },
      { name: `${b}attn_q.weight`, shape: [heads * d, H], format: f },
      { name: `${b}attn_k.weight`, shape: [kv * d, H], format: f },
      { name: `${b}attn_v.weight`, shape: [kv * d, H], format: f },
      { name: `${b}attn_output.weight`, shape: [H, heads * d], format: f },
      { name: `${b}attn_q_norm.weight`, shape: [d], format: 'f32' },
      { name: `${b}attn_k_norm.weight`, shape: [d], format: 'f32' },
      { name: `${b}ffn_norm.weight`, shape: [H], format: 'f32' },
      { name: `${b}ffn_gate_inp.weight`, shape: [E, H], format: 'f32' },
      { name: `${b}ffn_gate_exps.weight`, shape: [E, I, H], format: f },
      { name: `${b}ffn_up_exps.weight`, shape: [E, I, H], format: f },
      { name: `${b}ffn_down_exps.weight`, shape: [E, H, I], format: f },
    );
  }
  t.push({ name: 'output_norm.weight', shape: [H], format: 'f32' }, { name: 'output.weight', shape: [V, H], format: f === 'q4_k' ? 'q6_k' : f });
  return t;
}

/** One chunk of data per format, repeated: F32 vectors ≈ 1 (norm weights) and matrices ≈ ±0.02 (routers). */
function chunkOf(format: TensorFormat, seed: number): Uint8Array {
  if (isQuantFormat(format)) return randomQuantBlocks(format, 4 * Math.floor((4 << 20) / (4 * QUANT_BLOCKS[format].bytes)), seed, -12, 4);
  const values = new Float32Array(1 << 16);
  let a = seed;
  for (let i = 0; i < values.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    values[i] = (a / 2 ** 32 - 0.5) * 0.04;
  }
  return new Uint8Array(values.buffer);
}

function main(): void {
  const { values } = parseArgs({ options: { out: { type: 'string' }, layers: { type: 'string', default: '48' }, format: { type: 'string', default: 'q4_k' } } });
  if (!values.out) throw new Error('usage: random-gguf --out DIR [--layers N] [--format q4_k|q5_k|q6_k|q8_0|mxfp4]');
  const format = values.format as TensorFormat;
  if (!isQuantFormat(format)) throw new Error(`--format: "${values.format}" is not a quantised format`);
  const layers = Number(values.layers);
  const tensors = qwen3Tensors(layers, format);

  const h = new HeaderBytes();
  const kvs: [string, number | string | string[], ('u32' | 'f32')?][] = [
    ['general.architecture', 'qwen3moe'], ['general.name', `random Qwen3-30B-A3B shape, ${format.toUpperCase()}`],
    ['qwen3moe.context_length', 40960], ['qwen3moe.embedding_length', 2048], ['qwen3moe.block_count', layers],
    ['qwen3moe.feed_forward_length', 6144], ['qwen3moe.expert_feed_forward_length', 768],
    ['qwen3moe.attention.head_count', 32], ['qwen3moe.attention.head_count_kv', 4],
    ['qwen3moe.attention.key_length', 128], ['qwen3moe.attention.value_length', 128],
    ['qwen3moe.expert_count', 128], ['qwen3moe.expert_used_count', 8], ['qwen3moe.vocab_size', 151936],
    ['qwen3moe.rope.freq_base', 1e6, 'f32'], ['qwen3moe.attention.layer_norm_rms_epsilon', 1e-6, 'f32'],
    ['tokenizer.ggml.model', 'gpt2'], ['tokenizer.ggml.pre', 'default'],
    ['tokenizer.ggml.tokens', [...Array(256).keys()].map((b) => String.fromCharCode(b)).concat(['ab'])],
    ['tokenizer.ggml.merges', ['a b']],
  ];
  h.u32(0x46554747);
  h.u32(3);
  h.u64(tensors.length);
  h.u64(kvs.length);
  for (const [k, v, t] of kvs) h.kv(k, v, t);
  let offset = 0;
  const sizes = tensors.map((t) => tensorBytes(t.format, t.shape)!);
  tensors.forEach((t, i) => {
    h.str(t.name);
    h.u32(t.shape.length);
    for (const n of [...t.shape].reverse()) h.u64(n);
    h.u32(GGML_TYPE[t.format]);
    h.u64(offset);
    offset += Math.ceil(sizes[i] / ALIGN) * ALIGN;
  });
  const header = h.bytes();
  mkdirSync(values.out, { recursive: true });
  const path = join(values.out, 'model.gguf');
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    writeSync(fd, new Uint8Array(Math.ceil(header.length / ALIGN) * ALIGN - header.length));
    const chunks = new Map<string, Uint8Array>();
    tensors.forEach((t, i) => {
      const key = `${t.format}:${t.shape.length}`;
      let chunk = chunks.get(key);
      if (!chunk) chunks.set(key, (chunk = chunkOf(t.format, 1 + chunks.size)));
      const padded = Math.ceil(sizes[i] / ALIGN) * ALIGN;
      for (let at = 0; at < sizes[i]; at += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, sizes[i] - at));
      if (padded > sizes[i]) writeSync(fd, new Uint8Array(padded - sizes[i]));
    });
  } finally {
    closeSync(fd);
  }
  console.log(`${path}: ${tensors.length} tensors, ${((header.length + offset) / 1e9).toFixed(2)} GB`);
}

main();
