// Sources that lie, over real HTTP on 127.0.0.1: a server that answers missing files with its index.html (Vite's dev
// server, single-page hosts), connections dropped part-way, short bodies and transient 5xx answers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MissingFileError, ModelFileError } from '../../src/io/errors';
import { openCheckpoint } from '../../src/io/safetensors';
import { readJson, URL_READ_ATTEMPTS, urlFolder } from '../../src/io/source';
import { openModel } from '../../src/io/model';
import { streamLoadPlan } from '../../src/io/weights';
import { byteLevelTokenizerJson, modelFiles, synthModel } from '../support/io-models';

const INDEX_HTML = '<!DOCTYPE html>\n<html><head><title>app</title></head><body><div id="app"></div></body></html>\n';
const model = synthModel('mixtral', { overrides: { num_hidden_layers: 1, vocab_size: 300 } });
const files: Record<string, Uint8Array> = Object.fromEntries(
  Object.entries(modelFiles(model, { extra: { 'tokenizer.json': JSON.stringify(byteLevelTokenizerJson()) } }))
    .map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]),
);

/** How the server misbehaves for a path: drop the connection after n body bytes, answer 503, or send HTML untyped. */
type Fault = { dropAfter: number; times: number } | { status: number; times: number } | { untypedHtml: true };
const faults = new Map<string, Fault>();
const requests: string[] = [];

function handle(req: IncomingMessage, res: ServerResponse): void {
  const name = decodeURIComponent((req.url ?? '/').split('/').pop() ?? '');
  requests.push(`${req.method} ${name} ${req.headers.range ?? ''}`);
  const data = files[name];
  const fault = faults.get(name);
  if (fault && 'untypedHtml' in fault) {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': INDEX_HTML.length });
    res.end(req.method === 'HEAD' ? undefined : INDEX_HTML);
    return;
  }
  if (!data) {
    // What Vite's dev server and single-page hosts do for any unknown path.
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': INDEX_HTML.length });
    res.end(req.method === 'HEAD' ? undefined : INDEX_HTML);
    return;
  }
  if (req.method === 'HEAD') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length, 'accept-ranges': 'bytes' });
    res.end();
    return;
  }
  const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
  const [begin, end] = m ? [Number(m[1]), Math.min(Number(m[2]) + 1, data.length)] : [0, data.length];
  const body = data.subarray(begin, end);
  if (fault && 'status' in fault && fault.times > 0) {
    fault.times--;
    res.writeHead(fault.status);
    res.end();
    return;
  }
  res.writeHead(m ? 206 : 200, {
    'content-type': 'application/octet-stream',
    'content-length': body.length,
    ...(m ? { 'content-range': `bytes ${begin}-${end - 1}/${data.length}` } : {}),
  });
  if (fault && 'dropAfter' in fault && fault.times > 0 && body.length > fault.dropAfter) {
    fault.times--;
    res.write(body.subarray(0, fault.dropAfter), () => res.socket?.destroy());
    return;
  }
  res.end(body);
}

let server: Server;
let base = '';
beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/m/`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

describe('a server that answers missing files with index.html', () => {
  it('treats them as missing: the unsharded checkpoint opens, absent files are MissingFileError', async () => {
    faults.clear();
    const folder = urlFolder(base);
    // model.safetensors.index.json is absent: without the check, the HTML page would be parsed as an index.
    expect(await folder.has('model.safetensors.index.json')).toBe(false);
    const ckpt = await openCheckpoint(folder);
    expect(ckpt.sharded).toBe(false);
    await expect(readJson(folder, 'generation_config.json')).rejects.toThrow(MissingFileError);
    await expect(readJson(folder, 'generation_config.json')).rejects.toThrow('generation_config.json: not found in');
    const opened = await openModel(folder);
    expect(opened.config.numLayers).toBe(1);
  });

  it('a listed file the server answers with HTML is missing, with or without a content type', async () => {
    faults.clear();
    const listed = urlFolder(base, { files: ['config.json', 'model.safetensors', 'tokenizer.json', 'special.json'] });
    await expect(readJson(listed, 'special.json')).rejects.toThrow(/special\.json: not found .*an HTML page/);
    faults.set('model.safetensors', { untypedHtml: true });
    await expect(openCheckpoint(listed)).rejects.toThrow(MissingFileError);
    faults.clear();
  });
});

describe('dropped connections, short bodies and transient errors', () => {
  it('a connection dropped part-way is resumed from the first missing byte', async () => {
    faults.clear();
    requests.length = 0;
    faults.set('model.safetensors', { dropAfter: 1000, times: 2 });
    const folder = urlFolder(base);
    const source = await folder.open('model.safetensors');
    const bytes = await source.read(0, source.size);
    expect(bytes).toEqual(files['model.safetensors']);
    const ranges = requests.filter((r) => r.startsWith('GET model.safetensors'));
    expect(ranges).toEqual([
      `GET model.safetensors bytes=0-${source.size - 1}`,
      `GET model.safetensors bytes=1000-${source.size - 1}`,
      `GET model.safetensors bytes=2000-${source.size - 1}`,
    ]);
  });

  it('503 answers are retried', async () => {
    faults.clear();
    faults.set('config.json', { status: 503, times: URL_READ_ATTEMPTS - 1 });
    const config = await readJson(urlFolder(base), 'config.json');
    expect(config).toMatchObject({ model_type: 'mixtral' });
  });

  it('a server that keeps dropping is reported with the file and the byte range', async () => {
    faults.clear();
    faults.set('model.safetensors', { dropAfter: 10, times: 100 });
    const source = await urlFolder(base).open('model.safetensors');
    const read = source.read(8, 500);
    await expect(read).rejects.toThrow(ModelFileError);
    await expect(source.read(8, 500)).rejects.toThrow(
      new RegExp(`^model\\.safetensors: bytes \\[8, 508\\): \\d+ bytes from \\d+ still missing after ${URL_READ_ATTEMPTS} attempts`),
    );
    faults.clear();
  });
});

describe('requests per model load', () => {
  it('a small checkpoint is fetched with one request, not one per tensor, and every tensor arrives intact', async () => {
    faults.clear();
    const per = synthModel('mixtral', { layout: 'per-expert', overrides: { num_hidden_layers: 3, vocab_size: 300 } });
    const perFiles = modelFiles(per, { extra: { 'tokenizer.json': JSON.stringify(byteLevelTokenizerJson()) } });
    const saved = { ...files };
    Object.assign(files, Object.fromEntries(Object.entries(perFiles).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v])));
    try {
      const folder = urlFolder(base, { files: Object.keys(perFiles) });
      const opened = await openModel(folder);
      const parts = opened.plan.entries.reduce((n, e) => n + e.parts.length, 0);
      expect(parts).toBeGreaterThan(40);
      requests.length = 0;
      const got = new Map<string, Uint8Array>();
      await streamLoadPlan(opened.checkpoint, opened.plan, (entry, at, bytes) => {
        const buf = got.get(entry.name) ?? new Uint8Array(Math.ceil(entry.byteLength / 4) * 4);
        buf.set(bytes, at);
        got.set(entry.name, buf);
      });
      // One GET for the whole file (before: one Range request per tensor part, 3 layers × (5 experts × 3 + 6) + 3 of them).
      expect(requests.filter((r) => r.startsWith('GET model.safetensors'))).toEqual([`GET model.safetensors bytes=0-${files['model.safetensors'].length - 1}`]);
      for (const [name, want] of per.canonical) {
        const entry = opened.plan.entries.find((e) => e.name === name);
        if (!entry) continue;
        expect(got.get(name)!.subarray(0, want.length), name).toEqual(want);
      }
    } finally {
      for (const k of Object.keys(files)) delete files[k];
      Object.assign(files, saved);
    }
  });
});
