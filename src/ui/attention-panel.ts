// Wires the attention-flow panel (src/viz/panels/attention.ts): while its <details> is open, the running model's
// attention probe is attached (src/engine/model/attention-probe.ts), so each step records its last token's
// attention weights per layer and head from the attention kernels' own softmax; closed, the probe is detached and the
// kernels run without its writes. The read-back is issued from the step listener, before the next step can be
// submitted, so it holds that step's weights.
import type { AttentionFlow } from '../engine/session-api';
import { AttentionPanel, type HeadAggregate } from '../viz/panels/attention';
import type { Dashboard } from './context';
import { el } from './dom';
import { showError } from './messages';

type Probe = { read(position: number): Promise<AttentionFlow>; close(): void };

export class AttentionView {
  readonly panel = new AttentionPanel(el('attention-flow'));
  private readonly box = el<HTMLDetailsElement>('attention-box');
  private readonly layerSelect = el<HTMLSelectElement>('attention-layer');
  private readonly headSelect = el<HTMLSelectElement>('attention-heads');
  private probe: Probe | null = null;
  /** The weights of the last recorded step, or null (none yet, or the text moved back past it). */
  flow: AttentionFlow | null = null;

  constructor(private readonly d: Dashboard) {
    this.box.addEventListener('toggle', () => this.sync());
    this.layerSelect.addEventListener('change', () => this.draw());
    this.headSelect.addEventListener('change', () => this.draw());
    d.state.subscribe((kind) => {
      if (kind === 'model') this.modelChanged();
      if (kind === 'view') this.draw();
    });
    d.onStep((kind) => {
      const position = (d.stepper?.position ?? 0) - 1;
      if (!this.probe || kind === 'plan') return;
      if (kind !== 'forward' || position < 0) {
        this.flow = null;
        this.draw();
        return;
      }
      this.probe.read(position).then((flow) => {
        this.flow = flow;
        this.draw();
      }, showError);
    });
  }

  /** Whether the probe is attached (the panel is open on a running model). */
  get recording(): boolean {
    return this.probe !== null;
  }

  private modelChanged(): void {
    this.probe?.close();
    this.probe = null;
    this.flow = null;
    const c = this.d.model?.config;
    this.layerSelect.replaceChildren(...Array.from({ length: c?.numLayers ?? 0 }, (_, l) => new Option(`layer ${l}`, String(l))));
    const heads = c?.numHeads ?? 0;
    this.headSelect.replaceChildren(
      new Option(`mean of ${heads} heads`, 'mean'),
      new Option(`max of ${heads} heads`, 'max'),
      new Option('each head', 'heads'),
    );
    this.sync();
  }

  /** Attach the probe while the panel is open on a running model, detach it otherwise. */
  private sync(): void {
    const session = this.d.model?.session;
    if (this.box.open && !this.probe && session?.openAttentionProbe) this.probe = session.openAttentionProbe();
    if (!this.box.open && this.probe) {
      this.probe.close();
      this.probe = null;
      this.flow = null;
    }
    this.draw();
  }

  private draw(): void {
    if (!this.box.open) return;
    const model = this.d.model;
    if (!model?.session?.openAttentionProbe) return this.panel.clear('attention is shown for a running model');
    const flow = this.flow;
    if (!flow) return this.panel.clear('step forward to record the next token’s attention');
    const layer = Math.min(Number(this.layerSelect.value) || 0, flow.layers - 1);
    const aggregate = this.headSelect.value as HeadAggregate;
    const keys = flow.position + 1;
    const first = Math.max(0, keys - this.panel.capacity());
    const shown = keys - first;
    const H = flow.heads;
    const rowOf = (h: number) => flow.weights.subarray((layer * H + h) * keys + first, (layer * H + h + 1) * keys);
    const sinks = model.config.attentionSinks ? flow.sink.subarray(layer * H, (layer + 1) * H) : null;
    let values: Float32Array, sink: Float32Array | null, rows: string[];
    if (aggregate === 'heads') {
      values = new Float32Array(H * shown);
      for (let h = 0; h < H; h++) values.set(rowOf(h), h * shown);
      sink = sinks && Float32Array.from(sinks);
      rows = Array.from({ length: H }, (_, h) => `head ${h}`);
    } else {
      const pick = aggregate === 'max' ? Math.max : (a: number, b: number) => a + b;
      values = new Float32Array(shown).fill(aggregate === 'max' ? -Infinity : 0);
      for (let h = 0; h < H; h++) rowOf(h).forEach((w, k) => (values[k] = pick(values[k], w)));
      let s = sinks ? (aggregate === 'max' ? Math.max(...sinks) : sinks.reduce((a, b) => a + b, 0)) : 0;
      if (aggregate === 'mean') {
        values = values.map((v) => v / H);
        s /= H;
      }
      sink = sinks ? Float32Array.of(s) : null;
      rows = [`${aggregate} of ${H}`];
    }
    const tokens = this.d.stepper?.processed.slice(first, keys).map((t) => t.text) ?? [];
    this.panel.draw({ layer, position: flow.position, first, aggregate, rows, values, sink, tokens, colormap: this.d.state.params.colormap });
  }
}
