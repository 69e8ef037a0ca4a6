// Surprisal of each token of the text (−log₂ p of the token given the ones before it) as a line over token
// positions (uPlot), with a hover readout of the position, token and value, and the mean (the text's loss).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export class SurprisalChart {
  private plot: uPlot | null = null;
  private width = 0;
  private labelOf: (p: number) => string = () => '';
  private readonly summary: HTMLElement;
  private readonly host: HTMLElement;

  constructor(container: HTMLElement) {
    this.summary = Object.assign(document.createElement('div'), { className: 'note surprisal-summary' });
    this.host = Object.assign(document.createElement('div'), { className: 'uplot-host' });
    container.append(this.summary, this.host);
  }

  /** `bits[p]`: surprisal of token p in bits (NaN unknown); `labelOf(p)`: its display text. */
  draw(bits: readonly number[], labelOf: (p: number) => string): void {
    this.labelOf = labelOf;
    const xs = bits.map((_, p) => p);
    const ys = bits.map((b) => (Number.isFinite(b) ? b : null));
    const known = ys.filter((b): b is number => b !== null);
    this.summary.textContent = known.length
      ? `mean surprisal ${(known.reduce((a, b) => a + b, 0) / known.length).toFixed(2)} bits/token over ${known.length} tokens ` +
        `(${((known.reduce((a, b) => a + b, 0) / known.length) * Math.LN2).toFixed(3)} nats: the text's loss)`
      : 'Surprisal appears once tokens after the first are processed.';
    const width = Math.max(200, this.host.clientWidth || 340);
    const data: uPlot.AlignedData = [xs, ys];
    if (!this.plot || width !== this.width) {
      this.plot?.destroy();
      this.width = width;
      const axis = { stroke: '#9aa3b2', grid: { stroke: '#232834' }, ticks: { stroke: '#232834' }, labelSize: 14, font: '10px system-ui', labelFont: '11px system-ui' };
      this.plot = new uPlot(
        {
          width,
          height: 130,
          legend: { show: true, live: true },
          cursor: { drag: { x: false, y: false } },
          scales: { x: { time: false } },
          axes: [
            { ...axis, label: 'token position' },
            { ...axis, label: 'surprisal (bits)', size: 40 },
          ],
          series: [
            { label: 'token', value: (_u, p) => (p === null ? '–' : `#${p} "${this.labelOf(p)}"`) },
            { label: 'surprisal', stroke: '#ffd166', width: 1.5, points: { show: true, size: 4 }, value: (_u, v) => (v === null ? '–' : `${v.toFixed(2)} bits`) },
          ],
        },
        data,
        this.host,
      );
    } else this.plot.setData(data);
  }
}
