// The side panels that show the routing record: tokens × experts heatmap of the focus layer, expert load split by
// domain, load-balance metrics over tokens, and the focus layer's module view. Each derives its data from the latest
// snapshot and the state, and redraws only on the changes it depends on.
import type { RoutingSnapshot } from '../engine/session-api';
import { HeatmapPanel } from '../viz/panels/heatmap';
import { LoadBarsPanel } from '../viz/panels/loadbars';
import { MetricsPanel } from '../viz/panels/metrics';
import { ModuleView } from '../viz/panels/module-view';
import { domainLoad, gateMatrix, ringTokens } from '../viz/panels/stats';
import type { Dashboard } from './context';
import { el } from './dom';
import type { ChangeKind } from './state';
import type { TokenInfo } from './stepper';

/** Beyond this many MoE layers the load bars show the focus layer only. */
const MAX_LOAD_BAR_LAYERS = 16;

export class RoutingPanels {
  private readonly heatmap: HeatmapPanel;
  private readonly loadBars: LoadBarsPanel;
  private readonly metrics: MetricsPanel;
  private readonly modules: ModuleView;

  constructor(private readonly d: Dashboard) {
    this.heatmap = new HeatmapPanel(el('heatmap'), (p) => d.state.selectToken(p));
    this.loadBars = new LoadBarsPanel(el('loadbars'), () => this.drawLoadBars());
    this.metrics = new MetricsPanel(el('metrics'));
    this.modules = new ModuleView(el('module-view'), (l) => d.scene.frameLayer(l));
    d.state.subscribe((kind) => this.onState(kind));
    d.snapshots.subscribe((s) => {
      this.metrics.add(s.position, s.metrics);
      this.drawAll();
    });
    d.onStep((kind) => {
      // A new text starts a new history.
      if (kind === 'plan' && d.model) this.metrics.clear(d.model.config.moeLayers);
    });
  }

  private onState(kind: ChangeKind): void {
    if (kind === 'routing' && this.d.model) {
      // Histories of two policies are never mixed: the original one is kept as the baseline of the first what-if.
      if (this.d.state.isOriginalPolicy(this.d.model.config.router.topK)) this.metrics.restart(false);
      else if (!this.metrics.hasBaseline) this.metrics.freezeAsBaseline();
      else this.metrics.restart(true);
    } else if (kind === 'model') {
      this.metrics.clear(this.d.model?.config.moeLayers ?? []);
      const replay = this.d.model?.replay;
      const absent = 'not recorded in a trace';
      this.metrics.setUnavailable(replay ? { auxLoss: replay.probs ?? '', zLoss: replay.probs ?? '', dropped: absent, rerouted: absent } : {});
      this.drawAll();
    } else if (kind === 'focus') this.drawAll();
    else if (kind === 'selection' || kind === 'view') this.drawHeatmap();
  }

  /** Tokens the snapshot's ring holds, with their display texts. */
  private tokens(s: RoutingSnapshot | null): readonly TokenInfo[] {
    const processed = this.d.stepper?.processed ?? [];
    return s ? processed.slice(0, Math.min(processed.length, ringTokens(s), s.position)) : [];
  }

  private drawAll(): void {
    this.drawHeatmap();
    this.drawLoadBars();
    this.drawModules();
  }

  private drawHeatmap(): void {
    const model = this.d.model;
    if (!model) return;
    const s = this.d.snapshots.current;
    const { focusLayer: focus, colormap } = this.d.state.params;
    const tokens = this.tokens(s);
    const noWeights = model.replay?.weights ?? null;
    this.heatmap.draw({
      matrix: s && tokens.length > 0 ? gateMatrix(s, focus, !noWeights) : new Float32Array(0),
      numExperts: model.config.numExperts,
      labels: tokens.map((t) => t.text),
      selected: this.d.state.selectedToken ?? -1,
      colormap,
      title: !model.config.moeLayers[focus]
        ? `layer ${focus} is dense (no router)`
        : noWeights
          ? `layer ${focus}: chosen experts per token (${noWeights})`
          : `layer ${focus}: gate weight per token × expert`,
    });
  }

  private drawLoadBars(): void {
    const model = this.d.model;
    if (!model) return;
    const s = this.d.snapshots.current;
    const E = model.config.numExperts;
    const focus = this.d.state.params.focusLayer;
    const split = this.loadBars.split;
    const tokens = this.tokens(s);
    // Tokens without the finer label (typed prompts, generated text, code for part of speech) keep their domain.
    const domains = tokens.map((t) => (split === 'genre' ? (t.genre ?? t.domain) : split === 'pos' ? (t.pos ?? (t.domain === 'prose' ? 'other' : t.domain)) : t.domain));
    const names = [...new Set(domains)];
    const moe = model.config.moeLayers.map((m, l) => (m ? l : -1)).filter((l) => l >= 0);
    const shown = moe.length > MAX_LOAD_BAR_LAYERS ? [focus].filter((l) => model.config.moeLayers[l]) : moe;
    this.loadBars.draw({
      domains: names,
      numExperts: E,
      focus,
      layers: s
        ? shown.map((l) => {
            const load = domainLoad(s, l, domains);
            return { layer: l, counts: names.map((n) => load.counts[load.names.indexOf(n)] ?? new Uint32Array(E)) };
          })
        : [],
    });
  }

  private drawModules(): void {
    const model = this.d.model;
    if (!model) return;
    const s = this.d.snapshots.current;
    const focus = this.d.state.params.focusLayer;
    const E = model.config.numExperts;
    this.modules.draw(model.config, focus, s && model.config.moeLayers[focus] ? s.counts.subarray(focus * E, (focus + 1) * E) : null);
  }
}
