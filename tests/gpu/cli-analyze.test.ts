// `moescope analyze` on the Mixtral fixture, as a script would call it: JSON out, figures written, bad input named.
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
/** The machine running the suite may be shared and slow: each call gets minutes. */
const SLOW = 400_000;
const ROOT = join(__dirname, '..', '..');
const MODEL = join('tests', 'fixtures', 'mixtral');
const cli = async (...args: string[]) =>
  JSON.parse((await exec('node', [join(ROOT, 'bin', 'moescope.mjs'), 'analyze', ...args], { cwd: ROOT, timeout: SLOW })).stdout);
const golden = JSON.parse(readFileSync(join(ROOT, MODEL, 'golden.json'), 'utf8')) as {
  prompt: string;
  input_ids: number[];
  prefill: { routing: { ids: number[][] }[] };
};
const tmp = mkdtempSync(join(tmpdir(), 'moescope-analyze-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('moescope analyze', () => {
  it('pathways: co-activation as transformers routed the prompt, and the figures', async () => {
    const out = await cli('pathways', '--model', MODEL, '--text', golden.prompt, '--json', '--svg', tmp);
    expect(out.tokens).toBe(golden.input_ids.length);
    const E = 8;
    for (let i = 0; i < E; i++) {
      for (let j = 0; j < E; j++) {
        const both = i !== j ? golden.prefill.routing[0].ids.filter((p) => p.includes(i) && p.includes(j)).length : 0;
        expect(out.coactivation[0][i][j]).toBe(both);
      }
    }
    expect(out.predictability).toHaveLength(1);
    expect(readFileSync(join(tmp, 'coactivation.svg'), 'utf8')).toContain('>layer 0<');
    expect(readFileSync(join(tmp, 'transitions.svg'), 'utf8')).toContain('>0 → 1<');
  }, SLOW);

  it('atlas: one run per expert plus one, ranked by Δ log-likelihood', async () => {
    const out = await cli('atlas', '--model', MODEL, '--text', 'The expert said hello', '--top', '4', '--json');
    expect(out.runs).toBe(1 + 2 * 8);
    expect(out.entries).toHaveLength(4);
    const d = out.entries.map((e: { deltaLogLikelihood: number }) => e.deltaLogLikelihood);
    expect([...d].sort((a, b) => a - b)).toEqual(d);
    expect(out.entries[0].mostHurt[0]).toHaveProperty('text');
  }, SLOW);

  it('attention: the last token’s weights per layer and head, softmaxes over the text, and the figure', async () => {
    const out = await cli('attention', '--model', MODEL, '--text', golden.prompt, '--json', '--svg', tmp);
    const T = golden.input_ids.length;
    expect(out.tokens).toBe(T);
    expect(out.layers).toHaveLength(2);
    for (const layer of out.layers as { heads: { weights: number[]; sink: number; top: { position: number; weight: number } }[] }[]) {
      expect(layer.heads).toHaveLength(4);
      for (const h of layer.heads) {
        expect(h.weights).toHaveLength(T);
        expect(h.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5); // no sinks in Mixtral
        expect(h.sink).toBe(0);
        expect(h.top.weight).toBe(Math.max(...h.weights));
      }
    }
    expect(readFileSync(join(tmp, 'attention.svg'), 'utf8')).toContain('>layer 1<');
  }, SLOW);

  it('merge: averaging a layer changes the prediction; the "before" run is the model as it is', async () => {
    const out = await cli('merge', '--model', MODEL, '--layer', '1', '--average', '--text', golden.prompt, '--max-tokens', '3', '--json');
    expect(out.before.next[0].id).not.toBe(undefined);
    expect(out.after.logLikelihood).not.toBeCloseTo(out.before.logLikelihood, 3);
    const run = JSON.parse((await exec('node', [join(ROOT, 'bin', 'moescope.mjs'), 'run', '--model', MODEL, '--prompt', golden.prompt, '--max-tokens', '3', '--json'], { cwd: ROOT })).stdout);
    expect(out.before.continuation).toBe(run.text);
  }, SLOW);

  it('align and corpus --compare of a model with itself: every expert matches itself, the same MI', async () => {
    const align = await cli('align', '--model', MODEL, '--other', MODEL, '--json');
    for (const l of align.layers) {
      expect(l.match).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      l.matched.forEach((s: number) => expect(s).toBeCloseTo(1, 9));
    }
    const samples = join(tmp, 'samples.json');
    writeFileSync(samples, JSON.stringify({ samples: [{ text: 'The expert said', domain: 'prose' }, { text: 'route(x, k=2)', domain: 'code' }] }));
    const out = await cli('corpus', '--model', MODEL, '--samples', samples, '--compare', MODEL, '--json', '--svg', tmp);
    expect(out.domains).toEqual(['code', 'prose']);
    expect(out.models[1].mutualInformation).toEqual(out.models[0].mutualInformation);
    expect(out.models[0].mutualInformation.some((v: number) => v > 0)).toBe(true);
    expect(out.alignment[0].match).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(existsSync(join(tmp, 'specialisation.svg'))).toBe(true);
  }, SLOW);

  it('atlas --from redraws the figures of a saved atlas, and names a file that is not one', async () => {
    const saved = join(tmp, 'atlas.json');
    const cell = (layer: number, expert: number, d: number) => ({ layer, expert, deltaLogLikelihood: d, meanKl: -d / 10 });
    writeFileSync(saved, JSON.stringify({ tokens: 5, entries: [cell(1, 2, -2.5), cell(0, 0, -1), cell(1, 0, 0.5)] }));
    const out = await cli('atlas', '--from', saved, '--svg', join(tmp, 'redrawn'));
    expect(out.figures).toHaveLength(2);
    const svg = readFileSync(join(tmp, 'redrawn', 'atlas-delta-ll.svg'), 'utf8');
    expect(svg).toContain('<title>1, 2: -2.5</title>');
    expect(svg).toContain('(5 tokens)');
    writeFileSync(saved, JSON.stringify({ tokens: 5, entries: [{ layer: 0 }] }));
    await expect(cli('atlas', '--from', saved, '--svg', tmp)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/atlas\.json: entries\[0\] lacks/) });
  }, SLOW);

  it('names the samples file and field when a sample has no domain', async () => {
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ text: 'x' }]));
    await expect(cli('corpus', '--model', MODEL, '--samples', bad)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/bad\.json: samples\[0\] field "domain"/) });
  }, SLOW);
});
