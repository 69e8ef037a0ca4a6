// Load-balance metrics over time (uPlot): one chosen metric per MoE layer (thin lines) and their mean (thick), against
// the token position of each snapshot. History is cut back when the user steps back. Histories of two routing
// policies are never mixed: the original policy's history can be frozen as a dashed baseline beside the what-if's.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { LayerMetrics } from '../../engine/session-api';
import { METRIC_KEYS, meanMetric, type MetricKey } from './stats';

export const METRIC_LABELS: Record<MetricKey, string> = {
  cv: 'load CV (std/mean)',
  auxLoss: 'Switch aux loss E·Σfᵢ·Pᵢ',
  zLoss: 'router z-loss',
  entropy: 'load entropy (nats)',
  balancedness: 'balancedness (mean/max)',
  deadExperts: 'dead experts',
  dropped: 'dropped assignments',
  rerouted: 're-routed assignments',
};

/** Lines drawn per layer at most; beyond that only the mean. */
const MAX_LAYER_LINES = 16;

export class MetricsPanel {
  private readonly history = new Map<number, LayerMetrics[]>();
  /** The original policy's history, frozen when a what-if began; null without one. */
  private baseline: Map<number, LayerMetrics[]> | null = null;
  private plot: uPlot | null = null;
  private plotKey = '';
  metric: MetricKey = 'cv';
  private readonly select: HTMLSelectElement;
  private readonly host: HTMLElement;
  private moeLayers: readonly boolean[] = [];

  constructor(container: HTMLElement) {
    this.select = document.createElement('select');
    this.select.setAttribute('aria-label', 'metric');
    for (const key of METRIC_KEYS) this.select.add(new Option(METRIC_LABELS[key], key));
    this.select.addEventListener('change', () => {
      this.metric = this.select.value as MetricKey;
      this.render();
    });
    this.host = document.createElement('div');
    this.host.className = 'uplot-host';
    container.append(this.select, this.host);
  }

  /** Metrics the current source cannot give, with why: their options are disabled and say so. */
  setUnavailable(why: Partial<Record<MetricKey, string>>): void {
    for (const option of this.select.options) {
      const reason = why[option.value as MetricKey];
      option.disabled = reason !== undefined;
      option.text = METRIC_LABELS[option.value as MetricKey] + (reason ? ` (${reason})` : '');
    }
    if (why[this.metric] !== undefined) {
      this.metric = 'cv';
      this.select.value = 'cv';
    }
  }

  /** Forget everything (new model or new text). */
  clear(moeLayers: readonly boolean[]): void {
    this.moeLayers = moeLayers;
    this.history.clear();
    this.baseline = null;
    this.render();
  }

  get hasBaseline(): boolean {
    return this.baseline !== null;
  }

  /** A what-if begins: the history so far becomes the baseline and a new one starts. */
  freezeAsBaseline(): void {
    this.baseline = new Map(this.history);
    this.history.clear();
    this.render();
  }

  /** Another policy: its history starts empty (the baseline stays); `keepBaseline` false drops it too. */
  restart(keepBaseline: boolean): void {
    this.history.clear();
    if (!keepBaseline) this.baseline = null;
    this.render();
  }

  /** Record the metrics of a snapshot taken at `position`, dropping any history past it (after a step back). */
  add(position: number, metrics: LayerMetrics[]): void {
    for (const p of this.history.keys()) if (p > position) this.history.delete(p);
    if (position > 0) this.history.set(position, metrics);
    this.render();
  }

  private render(): void {
    const base = this.baseline;
    const positions = [...new Set([...this.history.keys(), ...(base?.keys() ?? [])])].sort((a, b) => a - b);
    const layers = this.moeLayers.map((m, l) => (m ? l : -1)).filter((l) => l >= 0);
    const shown = layers.length <= MAX_LAYER_LINES ? layers : [];
    const mean = (h: Map<number, LayerMetrics[]>, p: number) => (h.has(p) ? meanMetric(h.get(p)!, this.moeLayers, this.metric) : null);
    const data: uPlot.AlignedData = [
      positions,
      positions.map((p) => mean(this.history, p)),
      ...(base ? [positions.map((p) => mean(base, p))] : []),
      ...shown.map((l) => positions.map((p) => this.history.get(p)?.[l]?.[this.metric] ?? null)),
    ];
    const width = Math.max(200, this.host.clientWidth || 320);
    const key = `${shown.join(',')}:${width}:${base !== null}:${this.metric}`;
    if (!this.plot || key !== this.plotKey) {
      this.plot?.destroy();
      this.plotKey = key;
      const value = (_u: uPlot, v: number | null) => (v === null ? '–' : v.toFixed(3));
      const series: uPlot.Series[] = [
        { label: 'token' },
        { label: base ? 'what-if mean' : 'mean', stroke: '#ffffff', width: 2, value, spanGaps: true },
        ...(base ? [{ label: 'original mean', stroke: '#8a93a3', width: 2, dash: [5, 4], value, spanGaps: true }] : []),
        ...shown.map((l, i) => ({
          value,
          spanGaps: true,
          label: `L${l}`,
          stroke: `hsl(${(i * 360) / Math.max(1, shown.length)}, 60%, 60%)`,
          width: 1,
        })),
      ];
      this.plot = new uPlot(
        {
          width,
          height: 150,
          legend: { show: true, live: true },
          cursor: { drag: { x: false, y: false } },
          scales: { x: { time: false } },
          axes: [
            { stroke: '#9aa3b2', grid: { stroke: '#232834' }, ticks: { stroke: '#232834' }, label: 'token position', labelSize: 14, labelFont: '11px system-ui' },
            { stroke: '#9aa3b2', grid: { stroke: '#232834' }, ticks: { stroke: '#232834' }, size: 44, label: METRIC_LABELS[this.metric], labelSize: 14, labelFont: '11px system-ui' },
          ],
          series,
        },
        data,
        this.host,
      );
    } else {
      this.plot.setData(data);
    }
  }
}
