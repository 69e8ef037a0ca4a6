// The committed quantised-block fixtures (tools/make_gguf_fixtures.py blocks): raw blocks and gguf-py's values.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { QUANT_BLOCKS, f32ToF16, type QuantFormat } from '../../src/model/dtypes';
import { rng } from './random';

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

/**
 * Seeded random blocks of `format` for a [rows, cols] tensor: random bytes whose scale fields hold finite values of
 * both signs between 2^minExp and 2^(minExp + 12) (default 2^-10 .. 2^2, as the fixture tool's random rows, smaller
 * so that products stay modest); MXFP4 exponents 2^minExp .. 2^(minExp + 11).
 */
export function randomBlocks(format: QuantFormat, rows: number, cols: number, seed: number, minExp = -10, spanExp = 12): Uint8Array {
  const { elements, bytes: size } = QUANT_BLOCKS[format];
  const r = rng(seed);
  const n = (rows * cols) / elements;
  const out = new Uint8Array(n * size);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * 256);
  const view = new DataView(out.buffer);
  const scale = () => f32ToF16((r() < 0.5 ? -1 : 1) * 2 ** (minExp + spanExp * r()));
  for (let b = 0; b < n; b++) {
    const at = b * size;
    if (format === 'q8_0' || format === 'q4_k' || format === 'q5_k') view.setUint16(at, scale(), true);
    if (format === 'q4_k' || format === 'q5_k') view.setUint16(at + 2, scale(), true);
    if (format === 'q6_k') view.setUint16(at + 208, scale(), true);
    if (format === 'mxfp4') out[at] = 127 + minExp + Math.floor(r() * spanExp); // 2^minExp ..
  }
  return out;
}

/** The bytes zero-padded to whole 32-bit words (a GPU buffer write needs them; the weight upload pads the same way). */
export function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}
