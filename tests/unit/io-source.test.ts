import { mkdtemp, writeFile, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MissingFileError, ModelFileError } from '../../src/io/errors';
import { nodeFolder } from '../../src/io/node-source';
import { BlobSource, fileListFolder, filesFromDrop, memoryFolder, readJson, urlFolder } from '../../src/io/source';
import type { ByteSource, FetchFn } from '../../src/io/source';

const bytes = (n: number, seed = 7) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}
const join8 = (chunks: Uint8Array[]) => {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.byteLength; }
  return out;
};

/**
 * A fake HTTP server over `files`: honours Range (206 + Content-Range) unless `ranges` is false (then 200 + the
 * whole body), answers HEAD with Content-Length (unless `headLength` is false), 404 for unknown names. The body is
 * delivered in 5-byte pieces so re-chunking is exercised. Records every request.
 */
function fakeFetch(files: Record<string, Uint8Array>, opts: { ranges?: boolean; headLength?: boolean } = {}) {
  const log: { url: string; method: string; range: string | null }[] = [];
  const fn: FetchFn = async (url, init) => {
    const method = init?.method ?? 'GET';
    const range = (init?.headers as Record<string, string> | undefined)?.Range ?? null;
    log.push({ url, method, range });
    const name = decodeURIComponent(url.slice(url.lastIndexOf('/') + 1));
    const data = files[name];
    if (!data) return new Response(null, { status: 404 });
    if (method === 'HEAD') {
      return new Response(null, { status: 200, headers: opts.headLength === false ? {} : { 'content-length': String(data.byteLength) } });
    }
    let body = data, status = 200;
    const headers: Record<string, string> = {};
    const m = range && opts.ranges !== false ? /bytes=(\d+)-(\d+)/.exec(range) : null;
    if (m) {
      const a = Number(m[1]), b = Math.min(Number(m[2]), data.byteLength - 1);
      body = data.subarray(a, b + 1);
      status = 206;
      headers['content-range'] = `bytes ${a}-${b}/${data.byteLength}`;
    }
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < body.byteLength; i += 5) controller.enqueue(body.slice(i, i + 5));
        controller.close();
      },
    });
    return new Response(stream, { status, headers });
  };
  return { fn, log };
}

/** Every source kind must return the same bytes for the same reads. */
async function checkSource(source: ByteSource, data: Uint8Array) {
  expect(source.size).toBe(data.byteLength);
  expect(await source.read(0, 0)).toEqual(new Uint8Array(0));
  expect(await source.read(3, 10)).toEqual(data.subarray(3, 13));
  const chunks = await collect(source.stream(2, data.byteLength - 5, 16));
  expect(chunks.slice(0, -1).every((c) => c.byteLength === 16)).toBe(true);
  expect(chunks[chunks.length - 1].byteLength).toBeLessThanOrEqual(16);
  expect(join8(chunks)).toEqual(data.subarray(2, data.byteLength - 3));
  await expect(source.read(data.byteLength - 2, 3)).rejects.toThrow(
    new RegExp(`^${source.name}: read of bytes \\[${data.byteLength - 2}, ${data.byteLength + 1}\\) runs past the end of the file \\(size ${data.byteLength}\\)`),
  );
}

describe('byte sources', () => {
  const data = bytes(101);
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moescope-io-'));
    await writeFile(join(dir, 'a.bin'), data);
    await writeFile(join(dir, 'config.json'), '{"model_type": "mixtral"}');
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'hidden.bin'), data);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('memory, blob, file and URL sources read the same ranges', async () => {
    await checkSource(await memoryFolder({ 'a.bin': data }).open('a.bin'), data);
    await checkSource(new BlobSource('a.bin', new Blob([data])), data);
    const file = await (await nodeFolder(dir)).open('a.bin');
    await checkSource(file, data);
    await file.close();
    await checkSource(await urlFolder('http://x/m', { fetch: fakeFetch({ 'a.bin': data }).fn }).open('a.bin'), data);
    await checkSource(await urlFolder('http://x/m/', { fetch: fakeFetch({ 'a.bin': data }, { ranges: false }).fn }).open('a.bin'), data);
    await checkSource(await urlFolder('http://x/m/', { fetch: fakeFetch({ 'a.bin': data }, { headLength: false }).fn }).open('a.bin'), data);
    await checkSource(
      await urlFolder('http://x/m/', { fetch: fakeFetch({ 'a.bin': data }, { headLength: false, ranges: false }).fn }).open('a.bin'),
      data,
    );
  });

  it('a picked file gone from disk since it was opened: a ModelFileError naming it, not the browser\'s nameless DOMException', async () => {
    // What Chromium's File does once the file behind it is deleted: slice() works, reading the slice rejects.
    const gone = new DOMException('A requested file or directory could not be found at the time an operation was processed.', 'NotFoundError');
    const file = { size: 100, slice: () => ({ arrayBuffer: () => Promise.reject(gone) }) } as unknown as Blob;
    const read = new BlobSource('model.safetensors', file).read(0, 8);
    await expect(read).rejects.toBeInstanceOf(ModelFileError);
    await expect(read).rejects.toMatchObject({ file: 'model.safetensors', field: null });
    await expect(read).rejects.toThrow(/^model\.safetensors: could not be read \(NotFoundError: A requested file [^)]*processed\); it was moved, deleted or changed since it was opened$/);
  });

  it('any range through any chunk size, from a server with or without Range support', async () => {
    const big = bytes(300, 3);
    const withRanges = await urlFolder('http://x/', { fetch: fakeFetch({ f: big }).fn }).open('f');
    const without = await urlFolder('http://x/', { fetch: fakeFetch({ f: big }, { ranges: false }).fn }).open('f');
    const file = new BlobSource('f', new Blob([big]));
    await fc.assert(
      fc.asyncProperty(fc.nat(300), fc.nat(300), fc.integer({ min: 1, max: 64 }), async (a, n, chunk) => {
        const offset = Math.min(a, 300), length = Math.min(n, 300 - offset);
        const want = big.subarray(offset, offset + length);
        for (const s of [withRanges, without, file]) {
          const chunks = await collect(s.stream(offset, length, chunk));
          expect(chunks.every((c) => c.byteLength <= chunk && c.byteLength > 0)).toBe(true);
          expect(join8(chunks)).toEqual(want);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('URL reads use one Range request per read; streams of a small file share one request for all of it', async () => {
    const { fn, log } = fakeFetch({ 'a.bin': data });
    const s = await urlFolder('http://host/model', { fetch: fn }).open('a.bin');
    log.length = 0;
    expect(await s.read(10, 50)).toEqual(data.subarray(10, 60));
    expect(log).toEqual([{ url: 'http://host/model/a.bin', method: 'GET', range: 'bytes=10-59' }]);
    log.length = 0;
    expect(join8(await collect(s.stream(10, 50, 7)))).toEqual(data.subarray(10, 60));
    expect(join8(await collect(s.stream(3, 20, 8)))).toEqual(data.subarray(3, 23));
    expect(await s.read(1, 2)).toEqual(data.subarray(1, 3));
    expect(log).toEqual([{ url: 'http://host/model/a.bin', method: 'GET', range: `bytes=0-${data.length - 1}` }]);
  });

  it('missing files name the file and the folder', async () => {
    await expect(memoryFolder({}, 'mem').open('config.json')).rejects.toThrow(MissingFileError);
    await expect(memoryFolder({}, 'mem').open('config.json')).rejects.toThrow('config.json: not found in mem');
    await expect((await nodeFolder(dir)).open('tokenizer.json')).rejects.toThrow(`tokenizer.json: not found in ${dir}`);
    const url = urlFolder('http://host/m/', { fetch: fakeFetch({}).fn });
    await expect(url.open('model.safetensors')).rejects.toThrow('model.safetensors: not found in http://host/m/');
    expect(await url.has('model.safetensors')).toBe(false);
    const listed = urlFolder('http://host/m/', { files: ['config.json'], fetch: fakeFetch({ 'x.bin': data }).fn });
    expect(await listed.has('x.bin')).toBe(false);
    await expect(listed.open('x.bin')).rejects.toThrow(MissingFileError);
  });

  it('a Node folder opens only plain names directly inside it', async () => {
    const folder = await nodeFolder(dir);
    expect((await folder.list()).sort()).toEqual(['a.bin', 'config.json']);
    await expect(folder.open('sub/hidden.bin')).rejects.toThrow(MissingFileError);
    await expect(folder.open('../a.bin')).rejects.toThrow(MissingFileError);
    expect(await readJson(folder, 'config.json')).toEqual({ model_type: 'mixtral' });
    await expect(nodeFolder(join(dir, 'nope'))).rejects.toThrow('no such directory');
    await expect(nodeFolder(join(dir, 'a.bin'))).rejects.toThrow('is not a directory');
  });

  it('bad JSON names the file', async () => {
    const folder = memoryFolder({ 'config.json': '{"a": ' });
    await expect(readJson(folder, 'config.json')).rejects.toThrow(/^config\.json: JSON syntax: invalid JSON/);
    await expect(readJson(memoryFolder({ 'x.json': new Uint8Array([0x7b, 0xff, 0x7d]) }), 'x.json')).rejects.toThrow('x.json: text: is not valid UTF-8');
  });

  it('picked files are known by base name; two with one name are refused', async () => {
    const a = new File([data], 'a.bin'), c = new File(['{}'], 'config.json');
    const folder = fileListFolder([a, c]);
    expect((await folder.list()).sort()).toEqual(['a.bin', 'config.json']);
    expect(await (await folder.open('a.bin')).read(0, 4)).toEqual(data.subarray(0, 4));
    expect(() => fileListFolder([a, new File([data], 'a.bin')])).toThrow(ModelFileError);
    expect(() => fileListFolder([a, new File([data], 'a.bin')])).toThrow('a.bin: two files with this name');
  });

  it('dropped directories are walked (readEntries called until empty)', async () => {
    const file = (name: string) => {
      const f = new File([name], name);
      return { isFile: true, isDirectory: false, name, file: (ok: (f: File) => void) => ok(f) };
    };
    const dirEntry = (name: string, batches: unknown[][]) => ({
      isFile: false, isDirectory: true, name,
      createReader: () => {
        let i = 0;
        return { readEntries: (ok: (e: unknown[]) => void) => ok(batches[i++] ?? []) };
      },
    });
    const tree = dirEntry('model', [[file('config.json'), file('tokenizer.json')], [dirEntry('sub', [[file('x.bin')]])]]);
    const plain = new File(['p'], 'plain.txt');
    const items = [
      { kind: 'file', webkitGetAsEntry: () => tree, getAsFile: () => null },
      { kind: 'string', webkitGetAsEntry: () => null, getAsFile: () => null },
      { kind: 'file', webkitGetAsEntry: () => null, getAsFile: () => plain },
    ];
    const files = await filesFromDrop(items as never);
    expect(files.map((f) => f.name).sort()).toEqual(['config.json', 'plain.txt', 'tokenizer.json', 'x.bin']);
  });
});
