// GGUF (llama.cpp's single-file checkpoint format), versions 2 and 3: the header reader.
//
// Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), all little-endian:
//   "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count,
//   metadata: key (u64 length + UTF-8) · u32 value type · value (scalars, strings, typed arrays),
//   tensor infos: name · u32 n_dims · u64 ne[n_dims] (ne[0] is the row, innermost) · u32 ggml type · u64 offset,
//   padding to `general.alignment` (default 32), then the tensor data, each tensor at data start + offset.
// Hand-written rather than @huggingface/gguf: that parser takes a URL (or, in Node only, a path) and reads through
// fetch, so it cannot read a dropped File or our ModelFolder sources, and it allocates array and string lengths as the
// file states them. Here the header is read through a ByteSource in growing chunks, and every length and count is
// checked against the bytes the file still has (and a header cap) before anything is allocated; each error names
// the file and the field or tensor. Only the header is held in memory; tensors are read later by byte range.
import { ModelFileError, field, tensorField } from './errors';
import type { ByteSource } from './source';
import type { TensorFormat } from '../model/dtypes';

/** Headers above this are refused (the largest real vocabularies with merges and scores take ~10 MB). */
export const MAX_GGUF_HEADER_BYTES = 256 << 20;
/** Longest metadata string (chat templates run to tens of KB) and key (the spec's limit). */
export const MAX_GGUF_STRING_BYTES = 16 << 20;
export const MAX_GGUF_KEY_BYTES = 65535;
const MAX_DIMS = 4;
const MAX_ARRAY_DEPTH = 3;
const READ_CHUNK = 1 << 20;
const MAGIC = 0x46554747; // "GGUF"

/** ggml tensor types: name, elements per block, bytes per block (gguf-py GGML_QUANT_SIZES, 0.19). */
export const GGML_TYPES: Readonly<Record<number, readonly [string, number, number]>> = {
  0: ['F32', 1, 4], 1: ['F16', 1, 2], 2: ['Q4_0', 32, 18], 3: ['Q4_1', 32, 20], 6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24], 8: ['Q8_0', 32, 34], 9: ['Q8_1', 32, 40], 10: ['Q2_K', 256, 84], 11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144], 13: ['Q5_K', 256, 176], 14: ['Q6_K', 256, 210], 15: ['Q8_K', 256, 292],
  16: ['IQ2_XXS', 256, 66], 17: ['IQ2_XS', 256, 74], 18: ['IQ3_XXS', 256, 98], 19: ['IQ1_S', 256, 50],
  20: ['IQ4_NL', 32, 18], 21: ['IQ3_S', 256, 110], 22: ['IQ2_S', 256, 82], 23: ['IQ4_XS', 256, 136],
  24: ['I8', 1, 1], 25: ['I16', 1, 2], 26: ['I32', 1, 4], 27: ['I64', 1, 8], 28: ['F64', 1, 8], 29: ['IQ1_M', 256, 56],
  30: ['BF16', 1, 2], 34: ['TQ1_0', 256, 54], 35: ['TQ2_0', 256, 66], 39: ['MXFP4', 32, 17], 40: ['NVFP4', 64, 36],
  41: ['Q1_0', 128, 18],
};

/** The ggml types the engine keeps in GPU memory, by type id. */
export const GGML_FORMATS: Readonly<Record<number, TensorFormat>> = {
  0: 'f32', 1: 'f16', 30: 'bf16', 8: 'q8_0', 12: 'q4_k', 13: 'q5_k', 14: 'q6_k', 39: 'mxfp4',
};

/** Metadata value types (gguf_type). */
const enum T { U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 }
const SCALAR_BYTES: Readonly<Record<number, number>> = {
  [T.U8]: 1, [T.I8]: 1, [T.U16]: 2, [T.I16]: 2, [T.U32]: 4, [T.I32]: 4, [T.F32]: 4, [T.BOOL]: 1,
  [T.U64]: 8, [T.I64]: 8, [T.F64]: 8,
};
/** Fewest bytes one element of a type can take (strings: the length; arrays: type + count). */
const minBytes = (type: number): number => (type === T.STRING ? 8 : type === T.ARRAY ? 12 : SCALAR_BYTES[type]);

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensor {
  name: string;
  /** ggml type id and its name (Q4_K, F32, …). */
  ggmlType: number;
  typeName: string;
  /** Row-major shape (ne reversed: the last dimension is the row). */
  shape: number[];
  /** The file holding the data (a split GGUF's tensors live in several), and the absolute byte range there. */
  file: string;
  begin: number;
  end: number;
}

export interface GgufHeader {
  file: string;
  fileSize: number;
  version: number;
  metadata: Map<string, GgufValue>;
  /** In file order. */
  tensors: Map<string, GgufTensor>;
  alignment: number;
  /** Absolute offset of the tensor data section. */
  dataStart: number;
}

/** Sequential reads of a ByteSource's header, fetched in chunks; every length checked before it is read. */
class HeaderReader {
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;
  pos = 0;
  readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly src: ByteSource, private readonly limit: number) {}

  fail(what: string, detail: string): never {
    throw new ModelFileError(this.src.name, what, detail);
  }

  /** Bytes left before the end of the file or the header cap. */
  remaining(): number {
    return Math.min(this.src.size, this.limit) - this.pos;
  }

  /** Makes n bytes at pos available, or fails naming `what` (truncated file or header cap). */
  async need(n: number, what: string): Promise<void> {
    if (this.pos + n <= this.bufStart + this.buf.length) return;
    if (this.pos + n > this.src.size) {
      this.fail(what, `the file ends at byte ${this.src.size}, before the ${n} bytes at ${this.pos} (truncated?)`);
    }
    if (this.pos + n > this.limit) this.fail(what, `header runs past ${this.limit} bytes, the most this reader accepts`);
    const length = Math.min(Math.max(n, READ_CHUNK), this.src.size - this.pos);
    this.buf = await this.src.read(this.pos, length);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = this.pos;
  }

  private at(n: number): number {
    const o = this.pos - this.bufStart;
    this.pos += n;
    return o;
  }

  async u32(what: string): Promise<number> {
    await this.need(4, what);
    return this.view.getUint32(this.at(4), true);
  }

  /** A u64 that must be a safe integer (counts, lengths, offsets, dims). */
  async u64(what: string): Promise<number> {
    await this.need(8, what);
    const v = this.view.getBigUint64(this.at(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(what, `value ${v} is too large`);
    return Number(v);
  }

  async string(what: string, max: number): Promise<string> {
    const n = await this.u64(what);
    if (n > max) this.fail(what, `string of ${n} bytes is longer than the ${max} allowed`);
    if (n > this.remaining()) this.fail(what, `string of ${n} bytes runs past the end of the header`);
    await this.need(n, what);
    const o = this.at(n);
    try {
      return this.decoder.decode(this.buf.subarray(o, o + n));
    } catch {
      return this.fail(what, 'is not valid UTF-8');
    }
  }

  async value(type: number, what: string, depth: number): Promise<GgufValue> {
    if (type === T.STRING) return this.string(what, MAX_GGUF_STRING_BYTES);
    if (type === T.ARRAY) {
      if (depth >= MAX_ARRAY_DEPTH) this.fail(what, `arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
      const elemType = await this.u32(what);
      if (minBytes(elemType) === undefined) this.fail(what, `unknown array element type ${elemType}`);
      const count = await this.u64(what);
      if (count * minBytes(elemType) > this.remaining()) {
        this.fail(what, `array of ${count} elements cannot fit in the ${this.remaining()} header bytes left`);
      }
      const out: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = await this.value(elemType, what, depth + 1);
      return out;
    }
    const size = SCALAR_BYTES[type];
    if (size === undefined) this.fail(what, `unknown value type ${type}`);
    await this.need(size, what);
    const o = this.at(size);
    const v = this.view;
    switch (type) {
      case T.U8: return v.getUint8(o);
      case T.I8: return v.getInt8(o);
      case T.U16: return v.getUint16(o, true);
      case T.I16: return v.getInt16(o, true);
      case T.U32: return v.getUint32(o, true);
      case T.I32: return v.getInt32(o, true);
      case T.F32: return v.getFloat32(o, true);
      case T.BOOL: return v.getUint8(o) !== 0;
      case T.F64: return v.getFloat64(o, true);
      default: {
        const big = type === T.U64 ? v.getBigUint64(o, true) : v.getBigInt64(o, true);
        return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
    }
  }
}

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * Reads and checks a GGUF header: magic, version 2 or 3, every metadata value, every tensor's type, shape and byte
 * range (whole blocks per row, aligned offset, inside the file, no two tensors overlapping).
 */
export async function readGgufHeader(src: ByteSource, options: { maxHeaderBytes?: number } = {}): Promise<GgufHeader> {
  const r: HeaderReader = new HeaderReader(src, options.maxHeaderBytes ?? MAX_GGUF_HEADER_BYTES);
  const magic = await r.u32(field('magic'));
  if (magic !== MAGIC) r.fail(field('magic'), `not a GGUF file (starts with 0x${magic.toString(16).padStart(8, '0')})`);
  const version = await r.u32(field('version'));
  if (version !== 2 && version !== 3) r.fail(field('version'), `version ${version} is not supported (2 and 3 are)`);
  const tensorCount = await r.u64(field('tensor_count'));
  const kvCount = await r.u64(field('metadata_kv_count'));
  // A key takes ≥ 8 + 4 + 1 bytes and a tensor info ≥ 8 + 4 + 8 + 4 + 8: counts the file cannot hold are errors now.
  if (kvCount * 13 > r.remaining()) r.fail(field('metadata_kv_count'), `${kvCount} entries cannot fit in the file`);
  if (tensorCount * 32 > r.remaining()) r.fail(field('tensor_count'), `${tensorCount} tensors cannot fit in the file`);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = await r.string(field(`metadata[${i}].key`), MAX_GGUF_KEY_BYTES);
    if (metadata.has(key)) r.fail(field(key), 'appears twice');
    const type = await r.u32(field(key));
    metadata.set(key, await r.value(type, field(key), 0));
  }
  const alignValue = metadata.get('general.alignment') ?? 32;
  if (typeof alignValue !== 'number' || !Number.isInteger(alignValue) || alignValue < 1 || (alignValue & (alignValue - 1)) !== 0) {
    r.fail(field('general.alignment'), `expected a power of two, found ${String(alignValue)}`);
  }
  const alignment = alignValue;

  const infos: { name: string; ggmlType: number; ne: number[]; offset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await r.string(field(`tensor_infos[${i}].name`), MAX_GGUF_KEY_BYTES);
    const what = tensorField(name);
    if (names.has(name)) r.fail(what, 'appears twice');
    names.add(name);
    const nDims = await r.u32(what);
    if (nDims < 1 || nDims > MAX_DIMS) r.fail(what, `has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const n = await r.u64(what);
      if (n < 1) r.fail(what, `dimension ${d} is ${n}`);
      ne.push(n);
    }
    const ggmlType = await r.u32(what);
    const offset = await r.u64(what);
    infos.push({ name, ggmlType, ne, offset });
  }
  const dataStart = Math.ceil(r.pos / alignment) * alignment;

  const tensors = new Map<string, GgufTensor>();
  for (const t of infos) {
    const what = tensorField(t.name);
    const type = Object.hasOwn(GGML_TYPES, t.ggmlType) ? GGML_TYPES[t.ggmlType] : undefined;
    if (!type) r.fail(what, `unknown ggml type ${t.ggmlType}`);
    const [typeName, blockElems, blockBytes] = type;
    const shape = [...t.ne].reverse();
    if (t.ne[0] % blockElems !== 0) {
      r.fail(what, `${typeName} × ${fmtShape(shape)}: a row of ${t.ne[0]} is not a whole number of ${blockElems}-element blocks`);
    }
    const elements = t.ne.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements)) r.fail(what, `shape ${fmtShape(shape)} has too many elements`);
    const bytes = (elements / blockElems) * blockBytes;
    if (t.offset % alignment !== 0) r.fail(what, `data offset ${t.offset} is not a multiple of the alignment ${alignment}`);
    const begin = dataStart + t.offset;
    const end = begin + bytes;
    if (end > src.size) {
      r.fail(what, `${typeName} × ${fmtShape(shape)} needs ${bytes} bytes from byte ${begin}, past the end of the file (${src.size})`);
    }
    tensors.set(t.name, { name: t.name, ggmlType: t.ggmlType, typeName, shape, file: src.name, begin, end });
  }
  const byStart = [...tensors.values()].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1];
    if (byStart[i].begin < prev.end) {
      r.fail(tensorField(prev.name),
        `${prev.typeName} × ${fmtShape(prev.shape)} needs ${prev.end - prev.begin} bytes but tensor "${byStart[i].name}" starts ` +
        `${byStart[i].begin - prev.begin} bytes after it (its size disagrees with its type and shape)`);
    }
  }
  return { file: src.name, fileSize: src.size, version, metadata, tensors, alignment, dataStart };
}

/** The engine format of a tensor, or an error naming the file, the tensor and its type. */
export function ggufTensorFormat(file: string, t: GgufTensor): TensorFormat {
  const f = Object.hasOwn(GGML_FORMATS, t.ggmlType) ? GGML_FORMATS[t.ggmlType] : undefined;
  if (!f) {
    const known = Object.values(GGML_FORMATS).map((x) => x.toUpperCase()).join(', ');
    throw new ModelFileError(file, tensorField(t.name), `type ${t.typeName} is not supported (the engine reads ${known})`);
  }
  return f;
}
