// The committed quantised-block fixtures (tools/make_gguf_fixtures.py blocks): raw blocks and gguf-py's values.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { QUANT_BLOCKS, type QuantFormat } from '../../src/model/dtypes';
import { randomQuantBlocks } from '../../src/bench/quant-operands';

const DIR = join(__dirname, '..', 'fixtures', 'gguf-blocks');

export interface BlockFixture {
  format: QuantFormat;
  rows: number;
  cols: number;
  /** [rows, cols] in the format's blocks, row-major. */
  bytes: Uint8Array;
  /** gguf-py's dequantisation, [rows, cols]. */
  values: Float32Array;
}

export const FIXTURE_FORMATS: QuantFormat[] = ['q8_0', 'q4_k', 'q5_k', 'q6_k', 'mxfp4'];

export function blockFixture(format: QuantFormat): BlockFixture {
  const index = JSON.parse(readFileSync(join(DIR, 'index.json'), 'utf8')) as {
    formats: Record<string, { rows: number; cols: number }>;
  };
  const { rows, cols } = index.formats[format];
  const bytes = new Uint8Array(readFileSync(join(DIR, `${format}.bin`)));
  const f32 = readFileSync(join(DIR, `${format}.f32`));
  const values = new Float32Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength));
  return { format, rows, cols, bytes, values };
}

/** Seeded random blocks of `format` for a [rows, cols] tensor (see randomQuantBlocks for the scale range). */
export function randomBlocks(format: QuantFormat, rows: number, cols: number, seed: number, minExp?: number, spanExp?: number): Uint8Array {
  return randomQuantBlocks(format, (rows * cols) / QUANT_BLOCKS[format].elements, seed, minExp, spanExp);
}

/** The bytes zero-padded to whole 32-bit words (a GPU buffer write needs them; the weight upload pads the same way). */
export function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}

/**
 * Hugging Face gpt-oss MXFP4 blocks, scales and transformers' float32 dequantisation ([E, N, K] rows), with −0 (its
 * table's value of code 8) written as +0, as ggml's table has it: the same numbers, and then the same bits.
 */
export function hfMxfp4Fixture(): { blocks: Uint8Array; scales: Uint8Array; count: number; values: Float32Array } {
  const index = JSON.parse(readFileSync(join(DIR, 'index.json'), 'utf8')) as { mxfp4_hf: { experts: number; rows: number; groups: number } };
  const { experts, rows, groups } = index.mxfp4_hf;
  const f32 = readFileSync(join(DIR, 'mxfp4-hf.f32'));
  return {
    blocks: new Uint8Array(readFileSync(join(DIR, 'mxfp4-hf.blocks'))),
    scales: new Uint8Array(readFileSync(join(DIR, 'mxfp4-hf.scales'))),
    count: experts * rows * groups,
    values: new Float32Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength)).map((v) => v + 0),
  };
}
