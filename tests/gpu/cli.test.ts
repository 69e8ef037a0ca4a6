// The CLI from a clean clone: `moescope run` on the bundled fixture models, as a person would call it.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { formatText, type RunSummary } from '../../src/cli/moescope';

const exec = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const cli = (...args: string[]) => exec('node', [join(ROOT, 'bin', 'moescope.mjs'), ...args], { cwd: ROOT, timeout: 120_000 });

describe('moescope run', () => {
  it('generates greedily what transformers generates, with a routing summary (--json)', async () => {
    const dir = join('tests', 'fixtures', 'olmoe');
    const golden = JSON.parse(readFileSync(join(ROOT, dir, 'golden.json'), 'utf8'));
    const { stdout } = await cli('run', '--model', dir, '--prompt', golden.prompt, '--max-tokens', '5', '--json');
    const out = JSON.parse(stdout) as RunSummary;
    expect(out.family).toBe('olmoe');
    expect(out.promptIds).toEqual(golden.input_ids);
    expect(out.generatedIds).toEqual(golden.generated_ids);
    expect(out.layers).toHaveLength(golden.num_layers);
    const moe = out.layers.filter((l) => l.moe);
    const tokens = golden.input_ids.length + 5;
    // Every token is routed to k experts in every MoE layer.
    for (const l of moe) expect(l.counts.reduce((a, b) => a + b, 0)).toBe(tokens * golden.top_k);
  });

  it('runs a GGUF file and reports the format of each tensor group', async () => {
    const dir = join('tests', 'fixtures', 'gguf-qwen3_moe');
    const golden = JSON.parse(readFileSync(join(ROOT, dir, 'golden.json'), 'utf8'));
    const { stdout } = await cli('run', '--model', dir, '--prompt', golden.prompt, '--max-tokens', '5', '--json');
    const out = JSON.parse(stdout) as RunSummary;
    expect(out.generatedIds).toEqual(golden.generated_ids);
    const formats = Object.fromEntries(out.weights.map((w) => [`${w.group} ${w.format}`, w.bytes]));
    // The fixture: Q8_0 embedding and attention, MXFP4 expert gate/up (17 bytes per 32 weights), F16 expert down.
    expect(formats['routed experts mxfp4']).toBe(2 * 16 * 2 * 24 * 64 / 32 * 17);
    expect(formats['routed experts f16']).toBe(2 * 16 * 64 * 24 * 2);
    expect(Object.keys(formats)).toEqual(expect.arrayContaining(['embedding q8_0', 'attention q8_0', 'norms f32', 'router f32', 'LM head q8_0']));
    expect(formatText(out)).toMatch(/routed experts\s+MXFP4\s+0\.10M params\s+51\.0 KiB\s+4\.25 bits\/weight/);
  }, 180_000);

  it('prints text and a per-layer table', async () => {
    const { stdout } = await cli('run', '--model', 'tests/fixtures/qwen2_moe', '--prompt', 'Routing <b>tokens</b>', '--max-tokens', '3');
    expect(stdout).toContain('Routing <b>tokens</b>');
    expect(stdout).toMatch(/layer\s+top experts/);
    expect(stdout).toMatch(/\n\s+1\s+dense FFN/);
  });

  it('a full context stops with a message (default) or slides the window (--on-full slide)', async () => {
    const dir = join('tests', 'fixtures', 'olmoe');
    const golden = JSON.parse(readFileSync(join(ROOT, dir, 'golden.json'), 'utf8'));
    const context = String(golden.input_ids.length + 3);
    const args = ['run', '--model', dir, '--prompt', golden.prompt, '--max-tokens', '8', '--context', context, '--json'];
    const stop = await cli(...args);
    const stopped = JSON.parse(stop.stdout) as RunSummary;
    expect(stopped.generatedIds).toHaveLength(3);
    expect(stopped.stopped).toBe('context full');
    expect(stop.stderr).toContain(`the context of ${context} tokens is full after 3 generated tokens; stopped`);
    const slide = JSON.parse((await cli(...args, '--on-full', 'slide')).stdout) as RunSummary;
    expect(slide.slides).toBeGreaterThanOrEqual(1);
    expect(slide.stopped === 'eos' || slide.generatedIds.length === 8).toBe(true);
    expect(slide.generatedIds.length).toBeGreaterThan(3);
    // Greedy: the tokens before the first slide are the stopped run's.
    expect(slide.generatedIds.slice(0, 3)).toEqual(stopped.generatedIds);
    // More steps and slides, the same GPU buffers alive at the end.
    expect(slide.resources.liveGpuBuffers).toBe(stopped.resources.liveGpuBuffers);
    await expect(cli(...args, '--on-full', 'wrap')).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/--on-full must be stop or slide/) });
   }, 240_000);

  it('names the file and field when the model folder is bad', async () => {
    await expect(cli('run', '--model', 'tests/fixtures/does-not-exist', '--prompt', 'x')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/does-not-exist/),
    });
    await expect(cli('run', '--model', 'tests/fixtures/olmoe')).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/usage/) });
  });
});
