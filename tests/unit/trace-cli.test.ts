// `moescope import` and `moescope report` from the command line, as a person would call them (no GPU needed).
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MemorySource } from '../../src/io/source';
import { TraceFile } from '../../src/trace/reader';

const ROOT = join(__dirname, '..', '..');
const cli = (...args: string[]) => promisify(execFile)('node', [join(ROOT, 'bin', 'moescope.mjs'), ...args], { cwd: ROOT, timeout: 110_000 });
const dir = mkdtempSync(join(tmpdir(), 'moescope-cli-'));

describe('moescope import / report', () => {
  it('imports Megatron ranks with a tokenizer-less config and reports them on one page', async () => {
    const out = join(dir, 'm.safetensors');
    const { stdout } = await cli(
      'import', 'megatron', 'tests/fixtures/traces/megatron-0.16-router_trace_rank0.jsonl', 'tests/fixtures/traces/megatron-0.16-router_trace_rank1.jsonl',
      '--config', 'tests/fixtures/qwen3_moe/config.json', '--engine-version', '0.16', '--parallelism', 'DP=2', '--out', out,
    );
    expect(stdout).toMatch(/9 tokens in 2 sequence\(s\), 2 MoE layers, k = 4 \(from megatron\)/);
    const t = await TraceFile.open(new MemorySource('m', new Uint8Array(readFileSync(out))));
    expect(t.meta.source).toMatchObject({ engine: 'megatron', version: '0.16', parallelism: 'DP=2' });
    const html = join(dir, 'r.html');
    const r = await cli('report', out, '--out', html, '--gpus', '4', '--step-tokens', '4');
    expect(r.stdout).toMatch(/r\.html: 9 tokens, 2 MoE layers; lowest mean straggler ratio on 4 GPUs: \S+ \d\.\d\d/);
    expect(readFileSync(html, 'utf8')).toContain('Expert-parallel placement on 4 GPUs');
  }, 240_000);

  it('imports vLLM responses with token texts from a tokenizer', async () => {
    const out = join(dir, 'v.safetensors');
    await cli('import', 'vllm', 'tests/fixtures/traces/vllm-0.21-completions.json', '--config', 'tests/fixtures/qwen3_moe/config.json',
      '--tokenizer', 'tests/fixtures/qwen3_moe/tokenizer.json', '--out', out);
    const t = await TraceFile.open(new MemorySource('v', new Uint8Array(readFileSync(out))));
    expect(t.meta.recorded).toEqual({ tokenIds: true, tokenTexts: true, weights: false, router: null });
    expect((await t.tokenTexts(0, 13))!.every((s) => typeof s === 'string')).toBe(true);
  }, 120_000);

  it('exits 1 naming the file and the field for a config of another model', async () => {
    await expect(
      cli('import', 'sglang', 'tests/fixtures/traces/sglang-0.5-generate.json', '--config', 'tests/fixtures/qwen3_moe/config.json', '--out', join(dir, 's.safetensors')),
    ).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/sglang-0\.5-generate\.json: field "\[0\]\.meta_info\.routed_experts": \d+ values are not a whole number of tokens × 2 layers × k 4/) });
  }, 120_000);
});
