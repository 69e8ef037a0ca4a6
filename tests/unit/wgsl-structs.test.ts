// Uniform structs and shared constants, WGSL against the host: each `var<uniform>` struct is parsed from the shader
// text and compared field by field (name, order, type) with the UniformLayout the host writes it with (u32 unless
// listed in `floats`), and the constants both sides hard-code are compared by value.
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveIncludes } from '../../src/engine/gpu';
import type { UniformLayout } from '../../src/engine/kernels/common';
import { ATTENTION_PARAMS } from '../../src/engine/kernels/attention';
import { BIAS_ADD_PARAMS } from '../../src/engine/kernels/bias-add';
import { EMBEDDING_PARAMS } from '../../src/engine/kernels/embedding';
import { MATMUL_PARAMS } from '../../src/engine/kernels/matmul';
import { GEMV_PARAMS } from '../../src/engine/kernels/gemv';
import { MLA_ABSORB_PARAMS } from '../../src/engine/kernels/mla-absorb';
import { MLA_ATTENTION_PARAMS } from '../../src/engine/kernels/mla-attention';
import { GEMV_ROWS } from '../../src/engine/kernels/moe-expert';
import { EXPERT_PARAMS, MOE_LAYER_PARAMS, REC } from '../../src/engine/kernels/moe-layout';
import { REROUTE_WG } from '../../src/engine/kernels/moe-reroute';
import { ROUTER_LANES, ROUTER_TOKENS_PER_WORKGROUP } from '../../src/engine/kernels/moe-router';
import { STATS_REBUILD_PARAMS, STATS_REBUILD_WG } from '../../src/engine/kernels/moe-stats';
import { RESIDUAL_PARAMS } from '../../src/engine/kernels/residual';
import { RMSNORM_PARAMS } from '../../src/engine/kernels/rmsnorm';
import { ROPE_APPEND_PARAMS, ROPE_PARAMS } from '../../src/engine/kernels/rope';
import { SAMPLING_PARAMS } from '../../src/engine/kernels/sampling';
import { SOFTMAX_PARAMS } from '../../src/engine/kernels/softmax';
import { SWIGLU_PARAMS } from '../../src/engine/kernels/swiglu';
import { K_MAX, NO_EXPERT } from '../../src/model/limits';

const SHADERS = join(__dirname, '..', '..', 'shaders');
const source = (name: string) => readFileSync(join(SHADERS, `${name}.wgsl`), 'utf8');
const stripComments = (code: string) => code.replace(/\/\/.*$/gm, '');

/** `name: type` of every field of `struct name { … }` in `code`, in order; null if the struct is not there. */
function parseStruct(code: string, name: string): string[] | null {
  const m = new RegExp(`struct\\s+${name}\\s*\\{([^}]*)\\}`).exec(stripComments(code));
  if (!m) return null;
  return m[1].split(',').map((f) => f.trim().replace(/\s+/g, ' ').replace(/\s*:\s*/, ': ')).filter((f) => f.length > 0);
}

/** The fields as the host writes them. */
function hostFields(layout: UniformLayout): string[] {
  return layout.fields.map((f) => `${f}: ${layout.floats?.includes(f) ? 'f32' : 'u32'}`);
}

/** Value of `const name: u32 = Nu;` in `code`. */
function wgslConst(code: string, name: string): number {
  const m = new RegExp(`const\\s+${name}\\s*:\\s*u32\\s*=\\s*(0x[0-9a-f]+|\\d+)u\\s*;`, 'i').exec(stripComments(code));
  if (!m) throw new Error(`const ${name} not found`);
  return Number(m[1]);
}

/** [file defining the struct, struct name, host layout]. */
const STRUCTS: [string, string, UniformLayout][] = [
  ['lib/moe_params', 'LayerParams', MOE_LAYER_PARAMS],
  ['lib/moe_expert_params', 'ExpertParams', EXPERT_PARAMS],
  ['moe_stats_rebuild', 'Params', STATS_REBUILD_PARAMS],
  ['matmul', 'Params', MATMUL_PARAMS],
  ['matmul_kmajor', 'Params', MATMUL_PARAMS],
  ['gemv', 'Params', GEMV_PARAMS],
  ['gemv_quant', 'Params', GEMV_PARAMS],
  ['attention', 'Params', ATTENTION_PARAMS],
  ['mla_absorb', 'Params', MLA_ABSORB_PARAMS],
  ['mla_attention', 'Params', MLA_ATTENTION_PARAMS],
  ['bias_add', 'Params', BIAS_ADD_PARAMS],
  ['embedding', 'Params', EMBEDDING_PARAMS],
  ['residual', 'Params', RESIDUAL_PARAMS],
  ['rmsnorm', 'Params', RMSNORM_PARAMS],
  ['rope', 'Params', ROPE_PARAMS],
  ['rope', 'AppendParams', ROPE_APPEND_PARAMS],
  ['sampling', 'Params', SAMPLING_PARAMS],
  ['softmax', 'Params', SOFTMAX_PARAMS],
  ['swiglu', 'Params', SWIGLU_PARAMS],
];

describe('uniform structs: WGSL against the host layouts', () => {
  for (const [file, struct, layout] of STRUCTS) {
    it(`${struct} in shaders/${file}.wgsl`, () => {
      const fields = parseStruct(source(file), struct);
      expect(fields, `struct ${struct} in ${file}.wgsl`).not.toBeNull();
      expect(fields).toEqual(hostFields(layout));
    });
  }

  it('every uniform a kernel binds is in the table above', () => {
    const kernels = readdirSync(SHADERS).filter((f) => f.endsWith('.wgsl')).map((f) => f.replace(/\.wgsl$/, ''));
    const missing: string[] = [];
    for (const kernel of kernels) {
      const code = stripComments(resolveIncludes(kernel, source));
      for (const [, type] of code.matchAll(/var<uniform>\s+\w+\s*:\s*(\w+)/g)) {
        // the file that defines the struct: the kernel itself or one of its includes
        const files = [kernel, ...[...source(kernel).matchAll(/^\/\/ #include "([\w/.-]+)"/gm)].map((m) => m[1])];
        const owner = files.find((f) => parseStruct(source(f), type) !== null);
        if (!STRUCTS.some(([f, s]) => f === owner && s === type)) missing.push(`${kernel}: ${type}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('the parser sees a swapped pair, a renamed field and a changed type', () => {
    const code = source('lib/moe_params');
    const swapped = code.replace('  noise_std: f32,', '  TMP').replace('  inv_temp: f32,', '  noise_std: f32,').replace('  TMP', '  inv_temp: f32,');
    const renamed = code.replace('  top_k: u32,', '  topk: u32,');
    const retyped = code.replace('  capacity: u32,', '  capacity: f32,');
    const host = hostFields(MOE_LAYER_PARAMS);
    for (const variant of [swapped, renamed, retyped]) expect(parseStruct(variant, 'LayerParams')).not.toEqual(host);
    expect(parseStruct(swapped, 'LayerParams')?.indexOf('inv_temp: f32')).toBe(host.indexOf('noise_std: f32'));
  });
});

describe('constants both sides hard-code', () => {
  it('routing records and slots (lib/moe_params)', () => {
    const code = source('lib/moe_params');
    expect(wgslConst(code, 'K_MAX')).toBe(K_MAX);
    expect(wgslConst(code, 'NONE')).toBe(NO_EXPERT);
    expect(wgslConst(code, 'REC')).toBe(REC);
  });
  it('the gemv expert kernels: R_MAX (their per-row arrays; the host compiles R ≤ it)', () => {
    expect(wgslConst(source('moe_expert_up_gemv'), 'R_MAX')).toBe(GEMV_ROWS);
  });
  it('the router: LANES and RT', () => {
    const code = source('moe_router');
    expect([wgslConst(code, 'LANES'), wgslConst(code, 'RT')]).toEqual([ROUTER_LANES, ROUTER_TOKENS_PER_WORKGROUP]);
  });
  it('the re-route kernel: WG', () => {
    expect(wgslConst(source('moe_reroute'), 'WG')).toBe(REROUTE_WG);
  });
  it('the statistics rebuild: workgroup size and slots', () => {
    const code = source('moe_stats_rebuild');
    expect(wgslConst(code, 'WG')).toBe(STATS_REBUILD_WG);
    expect(wgslConst(code, 'K_MAX')).toBe(K_MAX);
    expect(wgslConst(code, 'NONE')).toBe(NO_EXPERT);
  });
});
