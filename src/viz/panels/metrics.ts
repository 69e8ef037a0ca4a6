// Load-balance metrics over time (uPlot): one chosen metric per MoE layer (thin lines) and their mean (thick), against
// the token position of each snapshot. History is cut back when the user steps back.
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
    this.render();
  }

  /** Record the metrics of a snapshot taken at `position`, dropping any history past it (after a step back). */
  add(position: number, metrics: LayerMetrics[]): void {
    for (const p of this.history.keys()) if (p > position) this.history.delete(p);
    if (position > 0) this.history.set(position, metrics);
    this.render();
  }

  private render(): void {
    const positions = [...this.history.keys()].sort((a, b) => a - b);
    const layers = this.moeLayers.map((m, l) => (m ? l : -1)).filter((l) => l >= 0);
    const shown = layers.length <= MAX_LAYER_LINES ? layers : [];
    const data: uPlot.AlignedData = [
      positions,
      positions.map((p) => meanMetric(this.history.get(p)!, this.moeLayers, this.metric)),
      ...shown.map((l) => positions.map((p) => this.history.get(p)![l]?.[this.metric] ?? null)),
    ];
    const width = Math.max(200, this.host.clientWidth || 320);
    const key = `${shown.join(',')}:${width}`;
    if (!this.plot || key !== this.plotKey) {
      this.plot?.destroy();
      this.plotKey = key;
      const series: uPlot.Series[] = [
        { label: 'token' },
        { label: 'mean', stroke: '#ffffff', width: 2 },
        ...shown.map((l, i) => ({
          label: `L${l}`,
          stroke: `hsl(${(i * 360) / Math.max(1, shown.length)}, 60%, 60%)`,
          width: 1,
        })),
      ];
      this.plot = new uPlot(
        {
          width,
          height: 150,
          legend: { show: false },
          cursor: { drag: { x: false, y: false } },
          scales: { x: { time: false } },
          axes: [
            { stroke: '#9aa3b2', grid: { stroke: '#232834' }, ticks: { stroke: '#232834' } },
            { stroke: '#9aa3b2', grid: { stroke: '#232834' }, ticks: { stroke: '#232834' }, size: 44 },
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
