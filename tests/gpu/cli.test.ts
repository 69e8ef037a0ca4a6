// The CLI from a clean clone: `moescope run` on the bundled fixture models, as a person would call it.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it('shows ids the tokenizer lacks as <id N> (config vocab 413 > tokenizer 400) in the text, pieces and JSON', async () => {
    // The Qwen2-MoE fixture with lm_head row 405 (a padding row) set to 10 × the row of the token transformers picks
    // first: that logit is positive (it is the maximum), so the padding row wins the first greedy step.
    const dir = mkdtempSync(join(tmpdir(), 'moescope-padded-'));
    try {
      const src = join(ROOT, 'tests', 'fixtures', 'qwen2_moe');
      cpSync(src, dir, { recursive: true });
      const golden = JSON.parse(readFileSync(join(src, 'golden.json'), 'utf8'));
      const file = readFileSync(join(src, 'model.safetensors'));
      const headerLength = Number(file.readBigUInt64LE(0));
      const lmHead = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8'))['lm_head.weight'];
      expect(lmHead).toMatchObject({ dtype: 'F32', shape: [413, 64] });
      const rows = new Float32Array(file.buffer, file.byteOffset + 8 + headerLength + lmHead.data_offsets[0], 413 * 64);
      const first = golden.generated_ids[0] as number;
      for (let j = 0; j < 64; j++) rows[405 * 64 + j] = 10 * rows[first * 64 + j];
      writeFileSync(join(dir, 'model.safetensors'), file);

      const { stdout } = await cli('run', '--model', dir, '--prompt', golden.prompt, '--max-tokens', '3', '--json');
      const out = JSON.parse(stdout) as RunSummary;
      expect(out.generatedIds[0]).toBe(405);
      expect(out.text.startsWith('<id 405>')).toBe(true);
      expect(out.tokens[golden.input_ids.length]).toEqual({ id: 405, text: '<id 405>', generated: true });
      const plain = await cli('run', '--model', dir, '--prompt', golden.prompt, '--max-tokens', '1');
      expect(plain.stdout).toContain(`${golden.prompt}<id 405>`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--memory sets the budget; a refusal says how much to set, and that much loads (progress, timings, GPU memory)', async () => {
    const dir = join('tests', 'fixtures', 'olmoe');
    const refused = cli('run', '--model', dir, '--prompt', 'x', '--memory', '100kB');
    await expect(refused).rejects.toMatchObject({ code: 1 });
    const message = ((await refused.catch((e) => e)) as { stderr: string }).stderr;
    expect(message).toMatch(/needs [\d.]+ MB of GPU memory .*; the memory budget is ~100\.0 kB \(set with --memory\); run with --memory [\d.]+GB or more, or try config-only mode/);
    const suggested = /run with --memory (\S+) or more/.exec(message)![1];
    const { stdout, stderr } = await cli('run', '--model', dir, '--prompt', 'x', '--max-tokens', '2', '--memory', suggested, '--json');
    expect(stderr).toMatch(/loading weights ([\d.]+ kB) \/ \1\n$/);
    const out = JSON.parse(stdout) as RunSummary;
    expect(out.generatedIds).toHaveLength(2);
    expect(out.timings.loadSeconds).toBeGreaterThan(0);
    expect(out.timings.firstTokenSeconds).toBeGreaterThan(0);
    expect(out.timings.generateSeconds).toBeGreaterThanOrEqual(out.timings.firstTokenSeconds);
    expect(out.gpuMemory.map((m) => m.module)).toEqual(['weights', 'KV cache', 'activations + MoE scratch', 'routing record']);
    await expect(cli('run', '--model', dir, '--prompt', 'x', '--memory', 'lots')).rejects.toMatchObject({
      code: 1, stderr: expect.stringContaining('--memory: "lots" is not a size'),
    });
  });

  it('--prompt-ids feeds the given ids', async () => {
    const golden = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'olmoe', 'golden.json'), 'utf8'));
    const { stdout } = await cli('run', '--model', 'tests/fixtures/olmoe', '--prompt-ids', golden.input_ids.join(','), '--max-tokens', '5', '--json', '--quiet');
    const out = JSON.parse(stdout) as RunSummary;
    expect(out.promptIds).toEqual(golden.input_ids);
    expect(out.generatedIds).toEqual(golden.generated_ids);
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
