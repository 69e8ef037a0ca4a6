// Total vs active parameters, weight memory per module, and per-kernel GPU times, as small HTML tables.
// All text goes in through textContent.
import type { MoeConfig, ParameterCounts } from '../../model/config';
import type { KernelTiming } from '../../engine/session-api';
import { bitsPerWeight, type FormatGroupRow } from '../../model/weight-formats';

const BYTES: Record<MoeConfig['weightDtype'], number> = { f32: 4, f16: 2, bf16: 2 };

/** Human-readable count: 46.7B, 1.3M, 812k. */
export function formatCount(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(abs >= 1e11 ? 0 : 1)}B`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(abs >= 1e8 ? 0 : 1)}M`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(abs >= 1e5 ? 0 : 1)}k`;
  return String(Math.round(n));
}

/** Microseconds with a unit that reads: 850 µs, 12.3 ms, 1.25 s. */
export function formatMicros(us: number): string {
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e4) return `${(us / 1e3).toFixed(1)} ms`;
  return `${us.toFixed(us >= 100 ? 0 : 1)} µs`;
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Weight bytes per module, from the parameter counts and the checkpoint dtype. */
export function memoryByModule(config: MoeConfig, p: ParameterCounts): [string, number][] {
  const b = BYTES[config.weightDtype];
  const rows: [string, number][] = [
    ['embedding', p.embedding],
    ['attention', p.attention],
    ['router', p.router],
    ['routed experts', p.routedExperts],
    ['shared experts', p.sharedExperts],
    ['dense FFN', p.dense],
    ['norms', p.norms],
    ['LM head', p.lmHead],
  ];
  return rows.filter(([, n]) => n > 0).map(([name, n]) => [name, n * b]);
}

function table(rows: (string | number)[][], head: string[]): HTMLTableElement {
  const t = document.createElement('table');
  const tr = t.createTHead().insertRow();
  for (const h of head) {
    const th = document.createElement('th');
    th.textContent = h;
    tr.append(th);
  }
  const body = t.createTBody();
  for (const r of rows) {
    const row = body.insertRow();
    for (const c of r) row.insertCell().textContent = String(c);
  }
  return t;
}

export class ModelInfoPanel {
  private readonly params: HTMLElement;
  private readonly memory: HTMLElement;
  private readonly timings: HTMLElement;

  constructor(container: HTMLElement) {
    this.params = document.createElement('div');
    this.memory = document.createElement('div');
    this.timings = document.createElement('div');
    this.params.className = 'info-params';
    container.append(this.params, this.memory, this.timings);
  }

  /** `formats` (a loaded model's weights per group and format) replaces the estimate from the config's dtype. */
  setModel(config: MoeConfig, p: ParameterCounts, formats: readonly FormatGroupRow[] = []): void {
    const frac = p.total > 0 ? p.activePerToken / p.total : 0;
    const bar = document.createElement('div');
    bar.className = 'param-bar';
    const fill = document.createElement('div');
    fill.style.width = `${(frac * 100).toFixed(2)}%`;
    bar.append(fill);
    const line = document.createElement('div');
    line.textContent =
      `${formatCount(p.total)} parameters, ${formatCount(p.activePerToken)} active per token ` +
      `(${(frac * 100).toFixed(1)}%; k = ${config.router.topK} of ${config.numExperts} experts)`;
    this.params.replaceChildren(line, bar);
    if (formats.length) {
      const total = formats.reduce((s, r) => s + r.bytes, 0);
      this.memory.replaceChildren(
        table(
          [
            ...formats.map((r) => [r.group, r.format.toUpperCase(), formatCount(r.params), formatBytes(r.bytes), `${bitsPerWeight(r.format)}`]),
            ['total', '', formatCount(formats.reduce((s, r) => s + r.params, 0)), formatBytes(total), ''],
          ],
          ['weights', 'format', 'params', 'memory', 'bits / weight'],
        ),
      );
      return;
    }
    const mem = memoryByModule(config, p);
    const total = mem.reduce((s, [, n]) => s + n, 0);
    this.memory.replaceChildren(
      table(
        [...mem.map(([name, n]) => [name, formatBytes(n), `${((n / total) * 100).toFixed(1)}%`]), ['total', formatBytes(total), '']],
        [`weights (${config.weightDtype})`, 'memory', 'share'],
      ),
    );
  }

  /**
   * Per-kernel GPU times (`note` states the timer resolution, or why there are none) and, for a running model, the
   * GPU memory each module holds.
   */
  setTimings(timings: readonly KernelTiming[] | null, note: string, memory: readonly { module: string; bytes: number }[] = []): void {
    const caption = document.createElement('div');
    caption.className = 'note';
    caption.textContent = note;
    const parts: HTMLElement[] = [];
    if (memory.length) {
      const total = memory.reduce((s, m) => s + m.bytes, 0);
      parts.push(table([...memory.map((m) => [m.module, formatBytes(m.bytes)]), ['total', formatBytes(total)]], ['GPU memory', 'bytes']));
    }
    if (timings && timings.length) {
      const sorted = [...timings].sort((a, b) => b.microsPerToken - a.microsPerToken).slice(0, 24);
      const total = timings.reduce((s, t) => s + t.microsPerToken, 0);
      parts.push(
        table(
          [...sorted.map((t) => [t.name, formatMicros(t.microsPerToken), formatMicros(t.micros)]), ['all passes', formatMicros(total), '']],
          ['kernel (pass)', 'GPU time / token', 'per step'],
        ),
      );
      const steps = Math.max(...timings.map((t) => t.samples));
      const caption = Object.assign(document.createElement('div'), { className: 'note' });
      caption.textContent = `Per token: a step's time divided by the tokens it ran (steps of 1 to 64 tokens), summed over the ${steps} steps measured.`;
      parts.push(caption);
    }
    this.timings.replaceChildren(...parts, caption);
  }
}
