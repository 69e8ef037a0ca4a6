// Byte sources and model folders: one way to read byte ranges of a named file, whether it is a file on disk (Node,
// see node-source.ts, kept apart so browser bundles never import node:fs), a File/Blob the user picked or dropped,
// a URL (HTTP Range requests, falling back to one streamed GET), or bytes in memory.
//
// Large reads go through `stream`, which yields bounded chunks: nothing here ever holds a whole checkpoint in one
// ArrayBuffer (a URL file of at most URL_WHOLE_FILE_BYTES is the exception: it is fetched once, whole).
import { JSON_SYNTAX, MissingFileError, ModelFileError, TEXT } from './errors';

/** Default chunk for streamed reads (bytes). A multiple of 4 so GPU writes of whole chunks stay aligned. */
export const DEFAULT_CHUNK_BYTES = 8 << 20;

export interface ByteSource {
  /** File name inside its folder, used in every message. */
  readonly name: string;
  /** Total size in bytes (known once opened). */
  readonly size: number;
  /** Bytes [offset, offset + length) as one array: for small reads (headers, JSON). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Bytes [offset, offset + length) in order, as chunks of at most `chunkBytes` (the last may be shorter). */
  stream(offset: number, length: number, chunkBytes?: number): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

export interface ModelFolder {
  /** Where the files come from, for messages: a directory path, a URL, or "dropped files". */
  readonly location: string;
  /** File names known to be in the folder. A URL folder lists only the names it was given. */
  list(): Promise<string[]>;
  has(name: string): Promise<boolean>;
  /** Opens a file; a MissingFileError names the file and the folder if it is not there. */
  open(name: string): Promise<ByteSource>;
}

/** Checks a requested range against the file size; a clear error instead of a short read. */
export function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new ModelFileError(name, null, `invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > size) {
    throw new ModelFileError(name, null, `read of bytes [${offset}, ${offset + length}) runs past the end of the file (size ${size})`);
  }
}

/** Stream built from a random-access `read` (files, blobs, memory). */
async function* chunkedReads(
  read: (offset: number, length: number) => Promise<Uint8Array>,
  offset: number,
  length: number,
  chunkBytes: number,
): AsyncIterable<Uint8Array> {
  if (!(chunkBytes > 0)) throw new Error(`chunkBytes must be positive, got ${chunkBytes}`);
  for (let done = 0; done < length; ) {
    const n = Math.min(chunkBytes, length - done);
    yield await read(offset + done, n);
    done += n;
  }
}

/** Base for sources with random access; subclasses provide `readUnchecked`. */
abstract class RandomAccessSource implements ByteSource {
  constructor(readonly name: string, readonly size: number) {}
  protected abstract readUnchecked(offset: number, length: number): Promise<Uint8Array>;
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.name, this.size, offset, length);
    return this.readUnchecked(offset, length);
  }
  stream(offset: number, length: number, chunkBytes = DEFAULT_CHUNK_BYTES): AsyncIterable<Uint8Array> {
    checkRange(this.name, this.size, offset, length);
    return chunkedReads((o, n) => this.readUnchecked(o, n), offset, length, chunkBytes);
  }
  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------------------------
// In memory (tests, models built in the page)

export class MemorySource extends RandomAccessSource {
  constructor(name: string, private readonly bytes: Uint8Array) {
    super(name, bytes.byteLength);
  }
  protected async readUnchecked(offset: number, length: number): Promise<Uint8Array> {
    return this.bytes.slice(offset, offset + length);
  }
}

/** A folder of in-memory files; strings are stored as UTF-8. */
export function memoryFolder(files: Record<string, Uint8Array | string>, location = 'memory'): ModelFolder {
  const encoder = new TextEncoder();
  const entries = new Map(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? encoder.encode(v) : v]));
  return {
    location,
    list: async () => [...entries.keys()],
    has: async (name) => entries.has(name),
    open: async (name) => {
      const bytes = entries.get(name);
      if (!bytes) throw new MissingFileError(name, location);
      return new MemorySource(name, bytes);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Browser File / Blob

export class BlobSource extends RandomAccessSource {
  constructor(name: string, private readonly blob: Blob) {
    super(name, blob.size);
  }
  protected async readUnchecked(offset: number, length: number): Promise<Uint8Array> {
    let data: ArrayBuffer;
    try {
      data = await this.blob.slice(offset, offset + length).arrayBuffer();
    } catch (e) {
      // A picked or dropped file is read from disk when asked: gone or changed since, the browser refuses it
      // (NotFoundError, NotReadableError) without naming it.
      throw new ModelFileError(this.name, null, `could not be read (${(e as Error).name}: ${(e as Error).message.replace(/\.$/, '')}); it was moved, deleted or changed since it was opened`);
    }
    const bytes = new Uint8Array(data);
    if (bytes.byteLength !== length) {
      throw new ModelFileError(this.name, null, `read ${bytes.byteLength} of ${length} bytes at offset ${offset} (file changed on disk?)`);
    }
    return bytes;
  }
}

/**
 * A folder from files the user picked (<input type=file multiple / webkitdirectory>) or dropped. Files are known by
 * their base name (a picked directory gives "dir/config.json"); two files with one base name are an error, since the
 * folder would be ambiguous.
 */
export function fileListFolder(files: Iterable<File>, location = 'the chosen files'): ModelFolder {
  const byName = new Map<string, File>();
  for (const file of files) {
    const name = baseName(file.name);
    if (byName.has(name)) {
      throw new ModelFileError(name, null, `two files with this name among ${location}; choose one model folder`);
    }
    byName.set(name, file);
  }
  return {
    location,
    list: async () => [...byName.keys()],
    has: async (name) => byName.has(name),
    open: async (name) => {
      const file = byName.get(name);
      if (!file) throw new MissingFileError(name, location);
      return new BlobSource(name, file);
    },
  };
}

/** Minimal shapes of the drag-and-drop entry API (FileSystemEntry), so tests can pass plain objects. */
interface DropEntry {
  isFile: boolean;
  isDirectory: boolean;
  name: string;
  file?(ok: (f: File) => void, fail: (e: unknown) => void): void;
  createReader?(): { readEntries(ok: (entries: DropEntry[]) => void, fail: (e: unknown) => void): void };
}
interface DropItem {
  kind: string;
  webkitGetAsEntry(): DropEntry | null;
  getAsFile(): File | null;
}

/**
 * All files in a drop (DataTransfer.items): plain files, and the files inside dropped directories (walked
 * recursively). Call it synchronously inside the drop handler: the items are only readable during the event.
 */
export async function filesFromDrop(items: ArrayLike<DropItem>): Promise<File[]> {
  // Entries must be taken before the first await: the browser clears the DataTransfer after the event.
  const entries: (DropEntry | File)[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry();
    const file = entry ? null : item.getAsFile();
    if (entry) entries.push(entry);
    else if (file) entries.push(file);
  }
  const out: File[] = [];
  const walk = async (entry: DropEntry): Promise<void> => {
    if (entry.isFile && entry.file) {
      out.push(await new Promise<File>((ok, fail) => entry.file!(ok, fail)));
    } else if (entry.isDirectory && entry.createReader) {
      const reader = entry.createReader();
      // readEntries returns at most ~100 entries per call; keep calling until it returns none.
      for (;;) {
        const batch = await new Promise<DropEntry[]>((ok, fail) => reader.readEntries(ok, fail));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const e of entries) {
    if (e instanceof Blob) out.push(e as File);
    else await walk(e);
  }
  return out;
}

function baseName(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i >= 0 ? path.slice(i + 1) : path;
}

// ---------------------------------------------------------------------------------------------------------------
// URL

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/** Attempts per byte range before a dropped connection, short body or server error is reported. */
export const URL_READ_ATTEMPTS = 4;
/** Wait before the first retry; doubled for each further one. */
export const URL_RETRY_DELAY_MS = 200;

/**
 * A URL file at most this large is fetched whole, with one request, the first time it is streamed, and every stream
 * is served from that copy: a small checkpoint (the demo model's 18 MB) would otherwise cost one request per tensor.
 */
export const URL_WHOLE_FILE_BYTES = 64 << 20;

/** Field label of a byte range in messages: `bytes [0, 4096)`. */
const bytesField = (begin: number, end: number): string => `bytes [${begin}, ${end})`;

/** A failure worth another attempt: the connection dropped, the body ended early, or the server said try again. */
class TransientReadError extends Error {}

const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/**
 * An HTML page where a model file should be: single-page hosts and dev servers (Vite) answer unknown paths with
 * index.html and status 200. Such a file is missing, not a checkpoint to parse.
 */
function servesHtmlFor(name: string, res: Response): boolean {
  if (/\.html?$/i.test(name)) return false;
  return /^\s*text\/html\b/i.test(res.headers.get('content-type') ?? '');
}

/** The first bytes of an HTML document (for servers that send index.html without a content type). */
function looksLikeHtml(bytes: Uint8Array): boolean {
  const head = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart().toLowerCase();
  return head.startsWith('<!doctype html') || head.startsWith('<html');
}

const HTML_INSTEAD = 'the server answered with an HTML page (single-page hosts and dev servers answer unknown paths with index.html)';

/**
 * A file behind a URL. Reads use `Range: bytes=a-b`; a server that ignores Range (answers 200 with the whole body)
 * is read with one streamed GET that skips to the offset and stops after the range, so memory stays bounded either
 * way (at the cost of re-downloading the prefix for every read on such servers). A dropped connection, a short body
 * or a 5xx/429 answer is retried from the first byte not yet received (URL_READ_ATTEMPTS in all, with backoff),
 * then reported with the file and the byte range.
 */
export class UrlSource implements ByteSource {
  /** The whole file, once a stream asked for it (files of at most URL_WHOLE_FILE_BYTES). */
  private whole: Promise<Uint8Array> | null = null;

  private constructor(
    readonly name: string,
    readonly url: string,
    readonly size: number,
    private readonly fetchFn: FetchFn,
    private readonly location: string,
  ) {}

  static async open(name: string, url: string, location: string, fetchFn: FetchFn): Promise<UrlSource> {
    const size = await UrlSource.probeSize(name, url, location, fetchFn);
    return new UrlSource(name, url, size, fetchFn, location);
  }

  /** Size from HEAD's Content-Length, else from a 1-byte Range request's Content-Range, else a counted GET. */
  private static async probeSize(name: string, url: string, location: string, fetchFn: FetchFn): Promise<number> {
    const head = await fetchOrFail(name, url, fetchFn, { method: 'HEAD' });
    await drain(head);
    if (head.status === 404 || (head.ok && servesHtmlFor(name, head))) throw new MissingFileError(name, location, head.ok ? HTML_INSTEAD : undefined);
    const len = head.ok ? parseLength(head.headers.get('content-length')) : null;
    // Content-Length of a compressed response is not the file size: only trust it for identity encoding.
    const encoded = (head.headers.get('content-encoding') ?? 'identity') !== 'identity';
    if (len !== null && !encoded) return len;
    const probe = await fetchOrFail(name, url, fetchFn, { headers: { Range: 'bytes=0-0' } });
    if (probe.status === 404 || (probe.ok && servesHtmlFor(name, probe))) throw new MissingFileError(name, location, probe.ok ? HTML_INSTEAD : undefined);
    if (probe.status === 206) {
      const total = /\/(\d+)\s*$/.exec(probe.headers.get('content-range') ?? '');
      await probe.arrayBuffer(); // the one byte: read, not cancelled (a cancelled response is an aborted request)
      if (total) return Number(total[1]);
    } else if (!probe.ok) {
      throw new ModelFileError(name, 'HTTP status', `${probe.status} from ${url}`);
    }
    // No usable length header: count the bytes of one streamed GET.
    const body = probe.status === 200 ? probe : await fetchOrFail(name, url, fetchFn);
    if (!body.ok || !body.body) throw new ModelFileError(name, 'HTTP status', `${body.status} from ${url}`);
    let n = 0;
    const reader = body.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.byteLength;
    }
    return n;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.name, this.size, offset, length);
    if (this.whole) return (await this.whole).slice(offset, offset + length);
    return this.fetchBytes(offset, length);
  }

  async *stream(offset: number, length: number, chunkBytes = DEFAULT_CHUNK_BYTES): AsyncIterable<Uint8Array> {
    checkRange(this.name, this.size, offset, length);
    if (length === 0) return;
    if (this.size > URL_WHOLE_FILE_BYTES) {
      yield* this.fetchStream(offset, length, chunkBytes);
      return;
    }
    this.whole ??= this.fetchBytes(0, this.size);
    const bytes = await this.whole.catch((e) => {
      this.whole = null; // a later read may try again
      throw e;
    });
    yield* chunkedReads(async (o, n) => bytes.slice(o, o + n), offset, length, chunkBytes);
  }

  /** Bytes [offset, offset + length) as one array, over the network. */
  private async fetchBytes(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    if (length === 0) return out;
    let at = 0;
    for await (const chunk of this.fetchStream(offset, length, Math.max(length, 1))) {
      out.set(chunk, at);
      at += chunk.byteLength;
    }
    return out;
  }

  /** Bytes [offset, offset + length) over the network, resumed after transient failures. */
  private async *fetchStream(offset: number, length: number, chunkBytes: number): AsyncIterable<Uint8Array> {
    const end = offset + length;
    const pending = new Rechunker(chunkBytes);
    let at = offset;
    for (let attempt = 1; ; attempt++) {
      let why = 'the response ended early';
      try {
        for await (const piece of this.fetchRange(at, end)) {
          at += piece.byteLength;
          yield* pending.push(piece);
        }
      } catch (e) {
        if (!(e instanceof TransientReadError)) throw e;
        why = e.message;
      }
      if (at >= end) break;
      if (attempt >= URL_READ_ATTEMPTS) {
        throw new ModelFileError(
          this.name, bytesField(offset, end),
          `${end - at} bytes from ${at} still missing after ${attempt} attempts at ${this.url} (last: ${why})`,
        );
      }
      await new Promise((ok) => setTimeout(ok, URL_RETRY_DELAY_MS * 2 ** (attempt - 1)));
    }
    yield* pending.flush();
  }

  /** One request for [begin, end): the pieces the server sends, clipped to the range, until it stops or is done. */
  private async *fetchRange(begin: number, end: number): AsyncIterable<Uint8Array> {
    let res: Response;
    try {
      res = await this.fetchFn(this.url, { headers: { Range: `bytes=${begin}-${end - 1}` } });
    } catch (e) {
      throw new TransientReadError(`could not fetch: ${(e as Error).message}`);
    }
    let skip: number;
    if (res.status === 206) {
      const start = /bytes\s+(\d+)-/.exec(res.headers.get('content-range') ?? '');
      if (start && Number(start[1]) !== begin) {
        throw new ModelFileError(this.name, bytesField(begin, end), `server answered range from ${start[1]} for a request from ${begin}`);
      }
      skip = 0;
    } else if (res.status === 200) {
      skip = begin; // Range ignored: the whole file follows; skip to the offset.
    } else if (TRANSIENT_STATUS.has(res.status)) {
      await res.body?.cancel();
      throw new TransientReadError(`HTTP ${res.status}`);
    } else if (res.status === 404) {
      throw new MissingFileError(this.name, this.location);
    } else {
      throw new ModelFileError(this.name, bytesField(begin, end), `HTTP ${res.status} from ${this.url}`);
    }
    if (servesHtmlFor(this.name, res)) {
      await res.body?.cancel();
      throw new MissingFileError(this.name, this.location, HTML_INSTEAD);
    }
    if (!res.body) throw new TransientReadError('empty response body');
    const reader = res.body.getReader();
    let remaining = end - begin;
    let first = begin === 0;
    let ended = false;
    try {
      while (remaining > 0) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (e) {
          throw new TransientReadError(`connection dropped: ${(e as Error).message}`);
        }
        if (next.done) {
          ended = true;
          return;
        }
        let piece = next.value;
        if (first && skip === 0 && piece.byteLength > 0) {
          // No content type, but an HTML page all the same.
          if (looksLikeHtml(piece)) throw new MissingFileError(this.name, this.location, HTML_INSTEAD);
          first = false;
        }
        if (skip > 0) {
          const s = Math.min(skip, piece.byteLength);
          skip -= s;
          piece = piece.subarray(s);
        }
        if (piece.byteLength > remaining) piece = piece.subarray(0, remaining);
        remaining -= piece.byteLength;
        if (piece.byteLength > 0) yield piece;
      }
      // The range is in: a server that honoured it has nothing more to send, and the response ends without being
      // cancelled (a cancelled one counts as an aborted request in the browser).
      ended = (await reader.read().catch(() => ({ done: false }))).done;
    } finally {
      // Abandoned by the consumer, or the server sends more than the range: stop the download.
      if (!ended) await reader.cancel().catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.whole = null;
  }
}

/** Collects network pieces of any size into chunks of exactly `chunkBytes` (the last one shorter). */
class Rechunker {
  private buf: Uint8Array;
  private fill = 0;
  constructor(private readonly chunkBytes: number) {
    this.buf = new Uint8Array(chunkBytes);
  }
  *push(piece: Uint8Array): Iterable<Uint8Array> {
    while (piece.byteLength > 0) {
      const n = Math.min(piece.byteLength, this.chunkBytes - this.fill);
      this.buf.set(piece.subarray(0, n), this.fill);
      this.fill += n;
      piece = piece.subarray(n);
      if (this.fill === this.chunkBytes) {
        yield this.buf;
        this.buf = new Uint8Array(this.chunkBytes);
        this.fill = 0;
      }
    }
  }
  *flush(): Iterable<Uint8Array> {
    if (this.fill > 0) yield this.buf.slice(0, this.fill);
    this.fill = 0;
  }
}

async function fetchOrFail(name: string, url: string, fetchFn: FetchFn, init?: RequestInit): Promise<Response> {
  try {
    return await fetchFn(url, init);
  } catch (e) {
    throw new ModelFileError(name, 'HTTP request', `could not fetch ${url}: ${(e as Error).message}`);
  }
}

/**
 * Reads a response without a body to its end: a browser keeps such a response open until its (empty) body is read,
 * and lists it as an aborted request once it is dropped.
 */
async function drain(res: Response): Promise<void> {
  await res.arrayBuffer().catch(() => undefined);
}

function parseLength(v: string | null): number | null {
  if (v === null || !/^\d+$/.test(v.trim())) return null;
  return Number(v);
}

/**
 * A folder behind a base URL (e.g. `https://huggingface.co/org/model/resolve/main/` or the app's own
 * `/models/demo/`). With `files`, those names are the folder's listing and other names are missing; without it,
 * `has` asks the server (HEAD) so shards named by an index file are found without listing them first.
 */
export function urlFolder(baseUrl: string, options: { files?: string[]; fetch?: FetchFn } = {}): ModelFolder {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const fetchFn: FetchFn = options.fetch ?? ((input, init) => fetch(input, init));
  const known = options.files ? new Set(options.files) : null;
  const urlOf = (name: string) => {
    if (name.includes('/') || name.includes('\\') || name === '..' || name === '.') {
      throw new ModelFileError(name, null, 'not a plain file name');
    }
    return base + encodeURIComponent(name);
  };
  return {
    location: base,
    list: async () => (known ? [...known] : []),
    has: async (name) => {
      if (known) return known.has(name);
      const res = await fetchOrFail(name, urlOf(name), fetchFn, { method: 'HEAD' });
      await drain(res);
      return res.ok && !servesHtmlFor(name, res);
    },
    open: async (name) => {
      if (known && !known.has(name)) throw new MissingFileError(name, base);
      return UrlSource.open(name, urlOf(name), base, fetchFn);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Small whole-file helpers (config.json, tokenizer.json, index files)

/** Refuses to read a "small" file bigger than this into memory (a tokenizer.json is ~10–30 MB). */
export const MAX_TEXT_FILE_BYTES = 256 << 20;

export async function readText(folder: ModelFolder, name: string): Promise<string> {
  const source = await folder.open(name);
  try {
    if (source.size > MAX_TEXT_FILE_BYTES) {
      throw new ModelFileError(name, TEXT, `${source.size} bytes is too large for a JSON/text file (limit ${MAX_TEXT_FILE_BYTES})`);
    }
    const bytes = await source.read(0, source.size);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new ModelFileError(name, TEXT, 'is not valid UTF-8');
    }
  } finally {
    await source.close();
  }
}

export async function readJson(folder: ModelFolder, name: string): Promise<unknown> {
  return parseJson(name, await readText(folder, name));
}

export function parseJson(name: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFileError(name, JSON_SYNTAX, `invalid JSON (${(e as Error).message})`);
  }
}
