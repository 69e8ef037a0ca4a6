// safetensors: reading (and writing) the Hugging Face weight format, single files and sharded checkpoints.
//
// The format (https://huggingface.co/docs/safetensors) is one page: an 8-byte little-endian u64 N, then N bytes of
// UTF-8 JSON mapping tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data section
// that follows the header) plus an optional "__metadata__" string map, then the raw little-endian tensor bytes.
// This parser is hand-written: there is no well-kept JS library for reading local/remote files by range, and the
// whole format is the header checks below. Only the header is ever held in memory; tensors are read by byte range.
import type { WeightDtype } from '../model/dtypes';
import { MissingFileError, ModelFileError, TOP_LEVEL, field, tensorField } from './errors';
import { DEFAULT_CHUNK_BYTES, parseJson, readText } from './source';
import type { ByteSource, ModelFolder } from './source';

/** Bytes per element of every dtype the safetensors spec defines (used to validate offsets of any tensor). */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** The dtypes the engine keeps in GPU memory. */
export const SUPPORTED_DTYPES: Readonly<Record<string, WeightDtype>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** The safetensors dtype name of an engine dtype. */
export const SAFETENSORS_DTYPE: Readonly<Record<WeightDtype, string>> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** The reference implementation refuses headers above 100 MB; so do we (a corrupt length is usually huge). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  /** File (shard) name inside the model folder. */
  file: string;
  /** safetensors dtype name (F32, BF16, I64, …); see weightDtypeOf for the ones the engine accepts. */
  dtype: string;
  shape: number[];
  /** data_offsets as written in the header (relative to the data section). */
  dataOffsets: [number, number];
  /** Absolute byte range in the file: [begin, end). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** N: byte length of the JSON header. */
  headerLength: number;
  /** Absolute offset of the data section (8 + N). */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Own-property lookup: names from files ("toString", "__proto__") must never reach Object.prototype. */
const own = <T>(table: Readonly<Record<string, T>>, key: string): T | undefined =>
  Object.hasOwn(table, key) ? table[key] : undefined;

const fmtShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** The engine dtype of a tensor, or an error naming the file, the tensor and its dtype. */
export function weightDtypeOf(t: TensorInfo): WeightDtype {
  const d = own(SUPPORTED_DTYPES, t.dtype);
  if (!d) {
    throw new ModelFileError(t.file, tensorField(t.name), `dtype ${t.dtype} is not supported (the engine reads F32, F16 and BF16)`);
  }
  return d;
}

/**
 * Validates and parses a header. `headerJson` is the N bytes after the 8-byte length. Checks: JSON object; every
 * entry has a known dtype, a shape of non-negative integers and data_offsets [begin, end] with begin <= end inside
 * the data section; byte length = product(shape) · dtype size; no two tensors overlap.
 */
export function parseSafetensorsHeader(file: string, fileSize: number, headerLength: number, headerJson: Uint8Array): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerJson);
  } catch {
    throw new ModelFileError(file, 'header', 'is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelFileError(file, 'header', `invalid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelFileError(file, 'header', 'is not a JSON object');
  }
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, raw);
      continue;
    }
    const where = tensorField(name);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ModelFileError(file, where, 'header entry is not an object');
    }
    const entry = raw as Record<string, unknown>;
    const dtype = entry.dtype;
    if (typeof dtype !== 'string') throw new ModelFileError(file, where, 'dtype is missing or not a string');
    const size = own(SAFETENSORS_DTYPE_BYTES, dtype);
    if (size === undefined) throw new ModelFileError(file, where, `unknown dtype "${dtype}"`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelFileError(file, where, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offsets = entry.data_offsets;
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      throw new ModelFileError(file, where, `data_offsets ${JSON.stringify(offsets)} is not a pair [begin, end] of integers with 0 <= begin <= end`);
    }
    const [b, e] = offsets as [number, number];
    if (e > dataSize) {
      throw new ModelFileError(
        file, where,
        `data_offsets [${b}, ${e}] run past the end of the file (size ${fileSize}; the data section holds ${dataSize} bytes after the ${headerLength}-byte header)`,
      );
    }
    const expected = elementCount(shape as number[]) * size;
    if (e - b !== expected) {
      throw new ModelFileError(
        file, where,
        `data_offsets [${b}, ${e}] hold ${e - b} bytes but shape ${fmtShape(shape as number[])} of ${dtype} needs ${expected}`,
      );
    }
    tensors.set(name, { name, file, dtype, shape: shape as number[], dataOffsets: [b, e], begin: dataStart + b, end: dataStart + e });
  }
  // Overlap: sort by begin; each tensor must start at or after the previous one's end. Empty tensors overlap nothing.
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((x, y) => x.begin - y.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1], cur = sorted[i];
    if (cur.begin < prev.end) {
      throw new ModelFileError(
        file, tensorField(cur.name),
        `data_offsets [${cur.dataOffsets.join(', ')}] overlap tensor "${prev.name}" [${prev.dataOffsets.join(', ')}]`,
      );
    }
  }
  return { file, fileSize, headerLength, dataStart, tensors, metadata };
}

function parseMetadata(file: string, raw: unknown): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelFileError(file, field('__metadata__'), 'is not an object');
  }
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new ModelFileError(file, field(`__metadata__.${k}`), 'is not a string');
  }
  return raw as Record<string, string>;
}

/** Reads and validates the header of an open file: the 8-byte length (sane against the file size), then the JSON. */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const file = source.name;
  if (source.size < 8) {
    throw new ModelFileError(file, 'header length', `file is ${source.size} bytes; a safetensors file starts with an 8-byte header length`);
  }
  const lenBytes = await source.read(0, 8);
  const view = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8);
  const lo = view.getUint32(0, true), hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo; // exact below 2^53; anything that large fails the checks below anyway
  if (n < 2) throw new ModelFileError(file, 'header length', `${n} is too small for a JSON header`);
  if (n > MAX_HEADER_BYTES) {
    throw new ModelFileError(file, 'header length', `${n} bytes is implausibly large (limit ${MAX_HEADER_BYTES}); not a safetensors file?`);
  }
  if (8 + n > source.size) {
    throw new ModelFileError(file, 'header length', `${n} bytes run past the end of the file (size ${source.size})`);
  }
  return parseSafetensorsHeader(file, source.size, n, await source.read(8, n));
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints: one model.safetensors, or shards named by model.safetensors.index.json

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface Checkpoint {
  folder: ModelFolder;
  /** The file that names the tensors: model.safetensors, or the index for a sharded checkpoint (for messages). */
  entryFile: string;
  sharded: boolean;
  /** Parsed header of every file, by file name. */
  files: Map<string, SafetensorsHeader>;
  /** Every tensor by state-dict key (through the index's weight_map when sharded). */
  tensors: Map<string, TensorInfo>;
  /** Sum of the data sections of all files. */
  totalBytes: number;
}

/** Opens a checkpoint: validates every header (and the index) before anything is read from the data sections. */
export async function openCheckpoint(folder: ModelFolder): Promise<Checkpoint> {
  if (await folder.has(INDEX_FILE)) return openSharded(folder);
  if (await folder.has(SINGLE_FILE)) {
    const header = await readHeaderOf(folder, SINGLE_FILE);
    return {
      folder, entryFile: SINGLE_FILE, sharded: false,
      files: new Map([[SINGLE_FILE, header]]),
      tensors: header.tensors,
      totalBytes: header.fileSize - header.dataStart,
    };
  }
  throw new MissingFileError(SINGLE_FILE, folder.location, `no ${SINGLE_FILE} and no ${INDEX_FILE}: the folder has no weights; config-only mode needs just config.json`);
}

async function readHeaderOf(folder: ModelFolder, name: string): Promise<SafetensorsHeader> {
  const source = await folder.open(name);
  try {
    return await readSafetensorsHeader(source);
  } finally {
    await source.close();
  }
}

async function openSharded(folder: ModelFolder): Promise<Checkpoint> {
  const index = parseJson(INDEX_FILE, await readText(folder, INDEX_FILE));
  if (typeof index !== 'object' || index === null || Array.isArray(index)) {
    throw new ModelFileError(INDEX_FILE, TOP_LEVEL, 'is not a JSON object');
  }
  const weightMap = (index as Record<string, unknown>).weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new ModelFileError(INDEX_FILE, field('weight_map'), weightMap === undefined ? 'missing' : 'is not an object');
  }
  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || /[/\\]/.test(shard) || shard === '..' || shard === '.') {
      throw new ModelFileError(INDEX_FILE, field(`weight_map["${tensor}"]`), `${JSON.stringify(shard)} is not a plain file name`);
    }
    // Anything else (config.json, the index itself) would be read as a safetensors file and blamed for it.
    if (!shard.endsWith('.safetensors')) {
      throw new ModelFileError(INDEX_FILE, field(`weight_map["${tensor}"]`), `${JSON.stringify(shard)} is not a .safetensors file`);
    }
    if (!byShard.has(shard)) byShard.set(shard, []);
    byShard.get(shard)!.push(tensor);
  }
  if (byShard.size === 0) throw new ModelFileError(INDEX_FILE, field('weight_map'), 'is empty');
  // Every shard must exist before any is read: report the first missing one with a tensor that needs it.
  for (const [shard, names] of byShard) {
    if (!(await folder.has(shard))) {
      throw new ModelFileError(
        INDEX_FILE, field(`weight_map["${names[0]}"]`),
        `shard "${shard}" (${names.length} tensor${names.length === 1 ? '' : 's'}) is not in ${folder.location}`,
      );
    }
  }
  const files = new Map<string, SafetensorsHeader>();
  const tensors = new Map<string, TensorInfo>();
  let totalBytes = 0;
  for (const [shard, names] of byShard) {
    const header = await readHeaderOf(folder, shard);
    files.set(shard, header);
    totalBytes += header.fileSize - header.dataStart;
    for (const name of names) {
      const info = header.tensors.get(name);
      if (!info) throw new ModelFileError(shard, tensorField(name), `listed in ${INDEX_FILE} but not in this shard`);
      tensors.set(name, info);
    }
  }
  return { folder, entryFile: INDEX_FILE, sharded: true, files, tensors, totalBytes };
}

/** A tensor by name, or an error naming the checkpoint's entry file and the tensor. */
export function getTensor(ckpt: Checkpoint, name: string, what?: string): TensorInfo {
  const t = ckpt.tensors.get(name);
  if (!t) throw new ModelFileError(ckpt.entryFile, tensorField(name), `missing${what ? ` (${what})` : ''}`);
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading tensor bytes

export type Progress = (done: number, total: number) => void;

export interface ReadOptions {
  chunkBytes?: number;
  onProgress?: Progress;
}

/** The raw little-endian bytes of a tensor as chunks, in order, with progress in bytes of this tensor. */
export async function* readTensorChunks(ckpt: Checkpoint, name: string, options: ReadOptions = {}): AsyncIterable<Uint8Array> {
  const t = getTensor(ckpt, name);
  const source = await ckpt.folder.open(t.file);
  try {
    const total = t.end - t.begin;
    let done = 0;
    options.onProgress?.(0, total);
    for await (const chunk of source.stream(t.begin, total, options.chunkBytes ?? DEFAULT_CHUNK_BYTES)) {
      done += chunk.byteLength;
      options.onProgress?.(done, total);
      yield chunk;
    }
  } finally {
    await source.close();
  }
}

/** One tensor's bytes in one array: for small tensors and tests (weights go through the load plan's stream). */
export async function readTensor(ckpt: Checkpoint, name: string, options: ReadOptions = {}): Promise<Uint8Array> {
  const t = getTensor(ckpt, name);
  const out = new Uint8Array(t.end - t.begin);
  let at = 0;
  for await (const chunk of readTensorChunks(ckpt, name, options)) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing (tests, tools, models built in code)

export interface TensorToWrite {
  name: string;
  /** safetensors dtype name. */
  dtype: string;
  shape: number[];
  /** Raw little-endian bytes; length must equal product(shape) · dtype size. */
  data: Uint8Array;
}

/** Encodes tensors (in the given order) as one safetensors file; the header is space-padded to 8-byte alignment. */
export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  // A null-prototype object: tensor names like "__proto__" or "toString" are plain keys.
  const header: Record<string, unknown> = Object.create(null);
  if (metadata) header.__metadata__ = Object.assign(Object.create(null), metadata);
  let offset = 0;
  for (const t of tensors) {
    const size = own(SAFETENSORS_DTYPE_BYTES, t.dtype);
    if (size === undefined) throw new Error(`encodeSafetensors: tensor "${t.name}": unknown dtype ${t.dtype}`);
    if (t.data.byteLength !== elementCount(t.shape) * size) {
      throw new Error(`encodeSafetensors: tensor "${t.name}": ${t.data.byteLength} bytes for shape ${fmtShape(t.shape)} of ${t.dtype}`);
    }
    if (Object.hasOwn(header, t.name)) throw new Error(`encodeSafetensors: duplicate tensor "${t.name}"`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, json.byteLength, true);
  view.setUint32(4, 0, true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}
