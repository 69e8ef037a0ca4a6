// The source tree's dependencies point one way. src/model describes the model and depends on nothing; io (reading
// files) and engine (the GPU runtime) each build on it and never on each other; loading joins them; the dashboard
// (viz, ui) and the command line sit on top. Checked on the real import statements, and the folder graph at every
// level (src/engine/kernels and src/engine/routing count as folders of their own) must have no cycle.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const SRC = 'src';

/** Top-level folders each top-level folder may import from (besides itself). */
const ALLOWED: Record<string, string[]> = {
  model: [],
  io: ['model'],
  engine: ['model'],
  reference: ['model'],
  trace: ['model', 'io'],
  loading: ['model', 'io', 'engine', 'trace'],
  viz: ['model', 'engine'],
  ui: ['model', 'io', 'engine', 'loading', 'viz', 'reference', 'trace', 'analysis'],
  cli: ['model', 'io', 'engine', 'loading', 'reference', 'bench', 'trace', 'analysis', 'viz'],
  bench: ['model', 'engine', 'reference'],
  analysis: ['model', 'reference'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : /\.(ts|mts)$/.test(e.name) ? [p] : [];
  });
}

/** Relative import specifiers of a file: static `import … from`, `export … from`, `import()` and `import.meta.glob`. */
function relativeImports(code: string): string[] {
  const specs: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|import\.meta\.glob\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const m of code.matchAll(re)) specs.push(m[1]);
  return specs;
}

/** The folder an import lands in: a folder import (`'../io'`) is that folder, a file import its parent. */
function targetFolder(fromFile: string, spec: string): string {
  const target = normalize(join(dirname(fromFile), spec.replace(/\?.*$/, '')));
  return existsSync(target) && statSync(target).isDirectory() ? target : dirname(target);
}

function folderGraph(files: string[], read: (f: string) => string): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const f of files) {
    const from = dirname(f);
    for (const spec of relativeImports(read(f))) {
      const to = targetFolder(f, spec);
      if (to === from || !to.startsWith(SRC + '/')) continue;
      if (!graph.has(from)) graph.set(from, new Set());
      graph.get(from)!.add(to);
    }
  }
  return graph;
}

/** One cycle of the graph as a list of folders, or null. */
function findCycle(graph: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

const top = (folder: string) => relative(SRC, folder).split('/')[0];

describe('layering of src/', () => {
  const files = sourceFiles(SRC);
  const graph = folderGraph(files, (f) => readFileSync(f, 'utf8'));

  it('finds the imports it checks (the parser is not blind)', () => {
    expect([...(graph.get('src/loading') ?? [])]).toEqual(expect.arrayContaining(['src/io', 'src/engine']));
    expect(relativeImports(`import a from './x';\nexport { b } from "../y";\nconst c = import('./z');`)).toEqual(['./x', '../y', './z']);
  });

  it('has no folder-level import cycle, at any depth', () => {
    expect(findCycle(graph)).toBeNull();
  });

  it('detects a cycle when there is one', () => {
    const g = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]]);
    expect(findCycle(g)).toEqual(['a', 'b', 'c', 'a']);
  });

  it('imports only downward: model ← io, engine, reference ← loading ← ui, cli', () => {
    const violations: string[] = [];
    for (const f of files) {
      const from = top(dirname(f));
      const allowed = ALLOWED[from];
      for (const spec of relativeImports(readFileSync(f, 'utf8'))) {
        const to = top(targetFolder(f, spec));
        if (to === from || to.startsWith('..')) continue;
        if (!allowed || !allowed.includes(to)) violations.push(`${f} imports ${spec} (${from} → ${to})`);
      }
    }
    expect(violations).toEqual([]);
  });
});
