// The dashboard: wires the 3D grid, the panels, the token stepper, the GUI and model loading around one model at a
// time (a running ModelSession, or a config-only skeleton). The frame loop only refreshes the grid from GPU buffers
// and draws; everything that needs CPU copies of routing data hangs off throttled, asynchronous snapshots.
import type { Gpu } from '../engine/gpu';
import type { RoutingSnapshot } from '../engine/session-api';
import { expertColorCss } from '../viz/colormaps';
import { emptyRoutingSources, type RoutingViewSources } from '../viz/instance-values';
import { CELL_KIND, instanceOf, layerVisibility } from '../viz/layout';
import { HeatmapPanel, visible } from '../viz/panels/heatmap';
import { LoadBarsPanel } from '../viz/panels/loadbars';
import { MetricsPanel } from '../viz/panels/metrics';
import { ModelInfoPanel } from '../viz/panels/model-info';
import { barHeight, domainLoad, expertStat, gateMatrix, routingAgreement, tokenPath, tokensOfExpert, topExpert } from '../viz/panels/stats';
import { drawCompare } from '../viz/panels/compare';
import { cosineMatrix, drawInspector, expertNorms, expertVectors } from '../viz/panels/inspector';
import { formatBytes } from '../viz/panels/model-info';
import { ModuleView } from '../viz/panels/module-view';
import { GridScene, type ViewSettings } from '../viz/scene';
import { download, traceCsv, traceJson } from './export';
import { ParamsGui } from './gui';
import { LayersList } from './layers-list';
import { compareCounterpart, type LoadedModel } from './models';
import { defaultParams, sanitizeParams, toPolicy, type Params } from './params';
import { sampleLabel } from './samples';
import { TokenStepper, type TextLabels } from './stepper';
import { TokenStrip } from './token-strip';
import { decodeUrlState, encodeUrlState } from './url-state';

/** Frame CPU times kept for the frame-time readout and tests. */
const FRAME_HISTORY = 1024;
/** Snapshots at most this often while tokens are being stepped. */
const SNAPSHOT_INTERVAL_MS = 200;

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no element #${id}`);
  return e as T;
}

export class App {
  readonly params: Params = defaultParams();
  readonly scene: GridScene;
  model: LoadedModel | null = null;
  stepper: TokenStepper | null = null;
  snapshot: RoutingSnapshot | null = null;
  hidden = new Set<number>();
  ablated = new Uint8Array(0);
  selectedToken: number | null = null;
  selectedCell = -1;
  hoveredCell = -1;
  /** CPU milliseconds of the last FRAME_HISTORY frames (ring) and frames drawn so far. */
  readonly frameTimes = new Float64Array(FRAME_HISTORY);
  frames = 0;
  /** True while the frame callback runs (tests count buffer mappings made inside it). */
  inFrame = false;
  /** Snapshots taken so far (tests wait on this). */
  snapshots = 0;

  private skeleton: (RoutingViewSources & { destroy(): void }) | null = null;
  private readonly gui: ParamsGui;
  private readonly heatmap: HeatmapPanel;
  private readonly loadBars: LoadBarsPanel;
  private readonly metrics: MetricsPanel;
  private readonly info: ModelInfoPanel;
  private readonly layers: LayersList;
  private readonly strip: TokenStrip;
  private readonly modules: ModuleView;
  /** The other checkpoint, run on the same tokens when compare mode is on. */
  private compare: LoadedModel | null = null;
  private readonly labels = el('labels');
  private readonly tooltip = el('tooltip');
  private readonly frameStatsEl = el('frame-stats');
  private labelEls: { layer: HTMLElement[]; expert: HTMLElement[] } = { layer: [], expert: [] };
  private snapshotBusy = false;
  private snapshotDirty = false;
  private urlTimer: ReturnType<typeof setTimeout> | null = null;
  private textSource: { sample: number | null; text: string | null } = { sample: 0, text: null };

  constructor(
    readonly gpu: Gpu,
    /** Loads a model by id ('demo:<name>', 'config:<file>'); the app keeps the current one if it throws. */
    private readonly loadById: (id: string, onProgress: (fraction: number, what: string) => void) => Promise<LoadedModel>,
  ) {
    const software = /swiftshader|llvmpipe|lavapipe/i.test(Object.values(gpu.adapter).join(' '));
    this.scene = new GridScene(el<HTMLCanvasElement>('grid'), gpu.device, !software);
    this.gui = new ParamsGui(el('gui'), this.params, (key) => this.onParam(key), {
      clearAblations: () => this.clearAblations(),
      ablateSelected: () => this.ablateSelected(),
      resetCamera: () => this.scene.frameGrid(),
    });
    this.heatmap = new HeatmapPanel(el('heatmap'), (p) => this.selectToken(p));
    this.loadBars = new LoadBarsPanel(el('loadbars'), () => this.drawPanels());
    this.metrics = new MetricsPanel(el('metrics'));
    this.info = new ModelInfoPanel(el('model-info'));
    this.layers = new LayersList(el('layers'), (l, shown) => this.toggleLayer(l, shown), (l) => this.solo(l));
    this.strip = new TokenStrip(el('strip'), (p) => this.selectToken(p));
    this.modules = new ModuleView(el('module-view'), (l) => this.scene.frameLayer(l));
    this.bindControls();
    this.bindPointer();
    new ResizeObserver(() => this.resize()).observe(el('view'));
    gpu.onError((e) => this.showError(e));
    gpu.onLost((e) => this.showError(e));
  }

  async init(): Promise<void> {
    await this.scene.init();
    this.resize();
    requestAnimationFrame(this.loop);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Frame loop: constant work per frame, no buffer mapping.

  private readonly loop = () => {
    const t0 = performance.now();
    this.inFrame = true;
    try {
      this.scene.frame();
      if (this.scene.takeCameraMoved()) this.placeLabels();
    } finally {
      this.inFrame = false;
    }
    this.frameTimes[this.frames % FRAME_HISTORY] = performance.now() - t0;
    this.frames++;
    if (this.frames % 60 === 0 && this.scene.layout) this.showFrameStats();
    requestAnimationFrame(this.loop);
  };

  /** Mean CPU time of the last 60 frames, in the corner of the view (updated once a second at 60 fps). */
  private showFrameStats(): void {
    let sum = 0;
    for (let i = 1; i <= 60; i++) sum += this.frameTimes[(this.frames - i) % FRAME_HISTORY];
    this.frameStatsEl.textContent = `frame CPU ${(sum / 60).toFixed(2)} ms (mean of 60) · ${this.scene.layout?.count ?? 0} instances`;
  }

  private resize(): void {
    const view = el('view');
    this.scene.resize(view.clientWidth, view.clientHeight);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Models

  /** Load a model by id and make it current; on failure the current model stays and the error is shown. */
  async open(id: string): Promise<boolean> {
    try {
      const model = await this.loadById(id, (f, what) => this.progress(f, what));
      await this.setModel(model);
      return true;
    } catch (e) {
      this.showError(e);
      this.syncModelSelect();
      return false;
    } finally {
      this.progress(null, '');
    }
  }

  async setModel(model: LoadedModel, restore = decodeUrlState('')): Promise<void> {
    const { config } = model;
    const old = { model: this.model, stepper: this.stepper, skeleton: this.skeleton };
    old.stepper?.pause();
    await old.stepper?.idle();

    const skeleton = model.session ? null : emptyRoutingSources(this.gpu.device, config.numLayers, config.numExperts);
    const sources: RoutingViewSources = model.session ? model.session.routing : skeleton!;
    Object.assign(this.params, sanitizeParams({ ...restore.params }, config.numLayers));
    this.hidden = new Set(restore.hiddenLayers);
    this.ablated = new Uint8Array(config.numLayers * config.numExperts);
    this.selectedCell = -1;
    this.hoveredCell = -1;
    this.selectedToken = null;
    this.snapshot = null;
    await this.scene.setModel(config, sources, { collapseDense: this.params.collapseDense }, this.view(), this.visibility(config.numLayers));

    // The new model is in place: release the old one (and a checkpoint it was compared with).
    this.compare?.destroy();
    this.compare = null;
    old.skeleton?.destroy();
    if (old.model && old.model !== model) old.model.destroy();
    this.model = model;
    this.skeleton = skeleton;
    this.stepper = null;

    this.buildLabels();
    // The first frames of a new grid build its render pipeline: the CPU readout starts after them.
    this.frameStatsEl.textContent = `${this.scene.layout?.count ?? 0} instances`;
    this.gui.setLayers(config.numLayers);
    this.gui.setAblatedCount(0);
    this.gui.setRoutingEnabled(model.session !== null);
    this.layers.setModel(config.moeLayers);
    (el('layers-box') as HTMLDetailsElement).open = config.numLayers <= 8;
    this.layers.update({ hidden: this.hidden, solo: this.params.soloLayer });
    this.info.setModel(config, model.parameters);
    this.info.setTimings(null, model.session ? 'GPU timings appear after the first steps.' : 'Not running: no GPU timings.');
    this.metrics.clear(config.moeLayers);
    el('model-note').textContent = model.note;
    el('model-note').title = model.note;
    el('model-name').textContent = model.name;
    this.syncModelSelect();
    this.fillSamples();
    this.setSteppingEnabled(model.session !== null);
    this.strip.setTokens([]);
    this.resetCompareAndInspector();
    this.drawPanels();

    if (model.session && model.tokenizer) {
      const stepper = new TokenStepper(model.session, model.tokenizer);
      this.stepper = stepper;
      stepper.onError = (e) => this.showError(e);
      stepper.onChange((kind) => this.afterStep(kind));
      this.applyStepperParams();
      model.session.setPolicy(toPolicy(this.params, config.router.topK, this.ablated));
      const sample = restore.text === null ? (restore.sample ?? 0) : null;
      const text = restore.text ?? model.samples[sample ?? 0]?.text ?? '';
      const chosen = restore.text === null ? model.samples[sample ?? 0] : undefined;
      const domain = chosen?.domain ?? 'prompt';
      this.textSource = { sample, text: restore.text };
      el<HTMLTextAreaElement>('prompt').value = text;
      el<HTMLSelectElement>('samples').value = sample === null ? '' : String(sample);
      await stepper.setText(text, domain, { genre: chosen?.genre, posSpans: chosen?.posSpans });
      if (restore.position > 0) await stepper.seek(restore.position);
      if (restore.token !== null && restore.token < stepper.position) this.selectToken(restore.token);
    }
    this.updateUrl();
  }

  private syncModelSelect(): void {
    const select = el<HTMLSelectElement>('model-select');
    if (this.model) select.value = this.model.id;
  }

  private fillSamples(): void {
    const select = el<HTMLSelectElement>('samples');
    const samples = this.model?.samples ?? [];
    select.replaceChildren(new Option(samples.length ? '(typed prompt)' : '(no samples)', ''));
    samples.forEach((s, i) => select.add(new Option(sampleLabel(s, i), String(i))));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Stepping

  private afterStep(kind: 'forward' | 'back' | 'reset' | 'plan'): void {
    const stepper = this.stepper!;
    if (kind === 'plan') this.strip.setTokens(stepper.planned);
    if (this.selectedToken !== null && this.selectedToken >= stepper.position) this.selectedToken = null;
    el('position').textContent = `${stepper.position} / ${stepper.mode === 'scan' ? stepper.planned.length : '∞'}`;
    el('play').textContent = stepper.playing ? '❚❚ pause' : '▶ play';
    el('play').setAttribute('aria-label', stepper.playing ? 'pause' : 'play');
    this.updateStrip();
    this.requestSnapshot();
    this.updateUrl();
  }

  /** Throttled, asynchronous snapshot of the routing record for the panels (never on the frame path). */
  requestSnapshot(): void {
    this.snapshotDirty = true;
    if (!this.snapshotBusy) this.snapshotPump = this.pumpSnapshots();
  }

  private snapshotPump: Promise<void> = Promise.resolve();

  /** Resolves once no snapshot is pending (tests wait on it before reading panels or tooltips). */
  async snapshotsSettled(): Promise<void> {
    while (this.snapshotBusy || this.snapshotDirty) await this.snapshotPump;
  }

  private async pumpSnapshots(): Promise<void> {
    this.snapshotBusy = true;
    try {
      while (this.snapshotDirty && this.model?.session && this.stepper) {
        this.snapshotDirty = false;
        const started = performance.now();
        const session = this.model.session;
        const snap = await this.stepper.run(() => session.snapshot());
        if (this.model?.session !== session) break;
        this.snapshot = snap;
        this.snapshots++;
        this.metrics.add(snap.position, snap.metrics);
        this.drawPanels();
        if (this.compare) await this.syncCompare(snap);
        const timings = this.model.timings?.();
        if (timings) this.info.setTimings(timings.kernels, timings.note, timings.memory);
        const rest = SNAPSHOT_INTERVAL_MS - (performance.now() - started);
        if (rest > 0) await new Promise((r) => setTimeout(r, rest));
      }
    } catch (e) {
      this.showError(e);
    } finally {
      this.snapshotBusy = false;
    }
  }

  private drawPanels(): void {
    const model = this.model;
    if (!model) return;
    const s = this.snapshot;
    const E = model.config.numExperts;
    const focus = this.params.focusLayer;
    const tokens = this.stepper?.processed ?? [];
    const T = s ? Math.min(tokens.length, s.assigned.length / (s.numLayers * 8)) : 0;
    this.heatmap.draw({
      matrix: s && T > 0 ? gateMatrix(s, focus) : new Float32Array(0),
      numExperts: E,
      labels: tokens.slice(0, T).map((t) => t.text),
      selected: this.selectedToken ?? -1,
      colormap: this.params.colormap,
      title: model.config.moeLayers[focus] ? `layer ${focus}: gate weight per token × expert` : `layer ${focus} is dense (no router)`,
    });
    const split = this.loadBars.split;
    // Tokens without the finer label (typed prompts, generated text, code for part of speech) keep their domain.
    const domains = tokens.map((t) => (split === 'genre' ? (t.genre ?? t.domain) : split === 'pos' ? (t.pos ?? (t.domain === 'prose' ? 'other' : t.domain)) : t.domain));
    const names = [...new Set(domains)];
    const moe = model.config.moeLayers.map((m, l) => (m ? l : -1)).filter((l) => l >= 0);
    const shownLayers = moe.length > 16 ? [focus].filter((l) => model.config.moeLayers[l]) : moe;
    this.loadBars.draw({
      domains: names,
      numExperts: E,
      focus,
      layers: s
        ? shownLayers.map((l) => {
            const d = domainLoad(s, l, domains);
            return { layer: l, counts: names.map((n) => d.counts[d.names.indexOf(n)] ?? new Uint32Array(E)) };
          })
        : [],
    });
    this.modules.draw(model.config, focus, s && model.config.moeLayers[focus] ? s.counts.subarray(focus * E, (focus + 1) * E) : null);
    this.updateStrip();
    this.updatePath();
    this.updateTooltip();
    this.updateExpertList();
  }

  private updateStrip(): void {
    const s = this.snapshot;
    const model = this.model;
    if (!model || !this.stepper) return;
    const focus = this.params.focusLayer;
    const E = model.config.numExperts;
    const ringRows = s ? s.assigned.length / (s.numLayers * 8) : 0;
    this.strip.update(
      this.stepper.position,
      (p) => (s && p < ringRows && p < s.position ? expertColorCss(topExpert(s, p, focus), E) : null),
      this.selectedToken,
    );
  }

  selectToken(p: number | null): void {
    this.selectedToken = p;
    this.updateStrip();
    this.updatePath();
    this.drawPanels();
    this.updateUrl();
  }

  /** The selected token's route as a line through the cells of the experts that processed it. */
  private updatePath(): void {
    const s = this.snapshot;
    const layout = this.scene.layout;
    if (!s || !layout || this.selectedToken === null) {
      this.scene.setPath(null);
      return;
    }
    // Through the tops of the bars (heights from the snapshot, as the grid draws them), a little above.
    const points: [number, number, number][] = [];
    for (const step of tokenPath(s, this.selectedToken)) {
      for (const { expert } of step.experts) {
        const i = instanceOf(layout, step.layer, expert);
        const y = Math.max(0.04, barHeight(s, step.layer, expert, this.params.mode, this.params.heightScale)) + 0.15;
        if (i >= 0) points.push([layout.rect[i * 4], y, layout.rect[i * 4 + 1]]);
      }
    }
    this.scene.setPath(points);
  }

  private setSteppingEnabled(enabled: boolean): void {
    for (const id of ['reset', 'back', 'forward', 'play', 'to-end', 'prompt', 'use-prompt', 'samples']) {
      (el(id) as HTMLButtonElement).disabled = !enabled;
    }
    el('stepper').classList.toggle('disabled', !enabled);
    el('position').textContent = enabled ? '0' : 'config only';
  }

  private applyStepperParams(): void {
    const st = this.stepper;
    if (!st) return;
    st.mode = this.params.stepMode;
    st.speed = this.params.speed;
    st.sampling = { temperature: this.params.sampleTemperature, topP: this.params.topP, seed: this.params.sampleSeed };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Params, layers, ablation

  private view(): ViewSettings {
    return { mode: this.params.mode, heightScale: this.params.heightScale, maxRatio: 6, colormap: this.params.colormap };
  }

  private visibility(numLayers = this.model?.config.numLayers ?? 0): boolean[] {
    return layerVisibility(numLayers, this.hidden, this.params.soloLayer);
  }

  private readonly routingKeys = new Set<keyof Params>(['topK', 'noiseStd', 'noiseSeed', 'temperature', 'capacityFactor', 'overflow']);

  onParam(key: keyof Params): void {
    const model = this.model;
    if (!model) return;
    if (this.routingKeys.has(key)) void this.applyPolicy();
    else if (key === 'mode' || key === 'colormap' || key === 'heightScale') {
      this.scene.setView(this.view());
      this.drawPanels();
    } else if (key === 'collapseDense') void this.rebuildGrid();
    else if (key === 'soloLayer') this.applyVisibility();
    else if (key === 'focusLayer') this.drawPanels();
    else this.applyStepperParams();
    this.updateUrl();
  }

  /** Send the routing policy to the engine and replay the text up to the current position under it. */
  async applyPolicy(): Promise<void> {
    const model = this.model;
    const stepper = this.stepper;
    if (!model?.session || !stepper) return;
    const policy = toPolicy(this.params, model.config.router.topK, this.ablated);
    await stepper.run(async () => {
      model.session!.setPolicy(policy);
      this.compare?.session?.setPolicy(policy);
    });
    await stepper.rerun();
  }

  private async rebuildGrid(): Promise<void> {
    const model = this.model;
    if (!model) return;
    const sources = model.session ? model.session.routing : this.skeleton!;
    await this.scene.setModel(model.config, sources, { collapseDense: this.params.collapseDense }, this.view(), this.visibility());
    this.scene.setAblated(this.ablated);
    this.buildLabels();
    this.updatePath();
  }

  toggleLayer(layer: number, shown: boolean): void {
    if (shown) this.hidden.delete(layer);
    else this.hidden.add(layer);
    this.applyVisibility();
    this.updateUrl();
  }

  solo(layer: number): void {
    this.params.soloLayer = layer;
    this.gui.refresh();
    this.applyVisibility();
    this.updateUrl();
  }

  private applyVisibility(): void {
    this.scene.setVisibility(this.visibility());
    this.layers.update({ hidden: this.hidden, solo: this.params.soloLayer });
    this.scene.takeCameraMoved();
    this.placeLabels();
  }

  private ablateSelected(): void {
    const layout = this.scene.layout;
    if (!layout || this.selectedCell < 0 || layout.kind[this.selectedCell] !== CELL_KIND.routed) {
      this.showError(new Error('Click a routed expert in the grid first, then ablate it.'));
      return;
    }
    const i = layout.layer[this.selectedCell] * layout.numExperts + layout.expert[this.selectedCell];
    this.ablated[i] = this.ablated[i] ? 0 : 1;
    this.gui.setAblatedCount(this.ablated.reduce((s, v) => s + v, 0));
    this.scene.setAblated(this.ablated);
    void this.applyPolicy();
  }

  private clearAblations(): void {
    this.ablated.fill(0);
    this.gui.setAblatedCount(0);
    this.scene.setAblated(this.ablated);
    void this.applyPolicy();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Pointer: hover tooltip, click to select an expert

  private bindPointer(): void {
    const canvas = this.scene.canvas;
    let down: { x: number; y: number } | null = null;
    canvas.addEventListener('pointermove', (ev) => {
      const r = canvas.getBoundingClientRect();
      const i = this.scene.pick(ev.clientX - r.left, ev.clientY - r.top);
      this.tooltip.style.transform = `translate(${ev.clientX - r.left + 14}px, ${ev.clientY - r.top + 14}px)`;
      if (i !== this.hoveredCell) {
        this.hoveredCell = i;
        this.scene.setHighlight(this.hoveredCell, this.selectedCell);
        this.updateTooltip();
      }
    });
    canvas.addEventListener('pointerleave', () => {
      this.hoveredCell = -1;
      this.scene.setHighlight(-1, this.selectedCell);
      this.updateTooltip();
    });
    canvas.addEventListener('pointerdown', (ev) => (down = { x: ev.clientX, y: ev.clientY }));
    canvas.addEventListener('pointerup', (ev) => {
      if (!down || Math.hypot(ev.clientX - down.x, ev.clientY - down.y) > 4) return;
      const r = canvas.getBoundingClientRect();
      this.selectCell(this.scene.pick(ev.clientX - r.left, ev.clientY - r.top));
    });
  }

  selectCell(i: number): void {
    this.selectedCell = i;
    this.scene.setHighlight(this.hoveredCell, this.selectedCell);
    this.updateExpertList();
  }

  /** Tooltip of the hovered cell: layer, expert, count, share, mean gate weight (from the latest snapshot). */
  private updateTooltip(): void {
    const layout = this.scene.layout;
    const i = this.hoveredCell;
    if (!layout || i < 0 || !this.model) {
      this.tooltip.hidden = true;
      return;
    }
    const l = layout.layer[i];
    const lines: string[] = [];
    if (layout.kind[i] === CELL_KIND.dense) lines.push(`layer ${l}: dense FFN (no router; every token)`);
    else if (layout.kind[i] === CELL_KIND.shared) lines.push(`layer ${l}: shared expert (every token)`);
    else {
      const e = layout.expert[i];
      lines.push(`layer ${l} · expert ${e}`);
      const s = this.snapshot;
      if (s) {
        const st = expertStat(s, l, e);
        lines.push(
          `count ${st.count}`,
          `share ${(st.share * 100).toFixed(1)}% (fair ${(100 / layout.numExperts).toFixed(1)}%)`,
          `mean gate weight ${st.meanGate.toFixed(3)}`,
          `mean router prob ${st.meanProb.toFixed(3)}`,
        );
        if (st.dropped || st.rerouted) lines.push(`dropped ${st.dropped} · re-routed in ${st.rerouted}`);
      } else lines.push(this.model.session ? 'no tokens yet' : 'config only: no routing data');
      if (this.ablated[l * layout.numExperts + e]) lines.push('ablated');
    }
    this.tooltip.replaceChildren(...lines.map((t) => Object.assign(document.createElement('div'), { textContent: t })));
    this.tooltip.hidden = false;
  }

  /** The tokens the selected expert took, as clickable chips. */
  private updateExpertList(): void {
    const box = el('expert-tokens');
    const layout = this.scene.layout;
    const i = this.selectedCell;
    if (!layout || i < 0 || layout.kind[i] !== CELL_KIND.routed) {
      box.replaceChildren(Object.assign(document.createElement('div'), { className: 'note', textContent: 'Click an expert in the grid to list the tokens it took.' }));
      return;
    }
    const l = layout.layer[i];
    const e = layout.expert[i];
    const head = document.createElement('div');
    const s = this.snapshot;
    const tokens = this.stepper?.processed ?? [];
    const positions = s ? tokensOfExpert(s, l, e).filter((p) => p < tokens.length) : [];
    head.textContent = `Layer ${l}, expert ${e}: ${positions.length} token${positions.length === 1 ? '' : 's'}`;
    const list = document.createElement('div');
    list.className = 'chips';
    for (const p of positions.slice(-300)) {
      const chip = document.createElement('button');
      chip.className = 'chip';
      chip.textContent = visible(tokens[p].text);
      chip.title = `#${p}`;
      chip.addEventListener('click', () => this.selectToken(p));
      list.append(chip);
    }
    box.replaceChildren(head, list);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Axis labels (HTML overlay), re-projected only when the camera moves

  private buildLabels(): void {
    const layout = this.scene.layout;
    if (!layout) return;
    const make = (text: string, cls: string) => Object.assign(document.createElement('span'), { textContent: text, className: cls });
    this.labelEls = {
      layer: Array.from({ length: layout.numLayers }, (_, l) => make(`L${l}`, 'label layer-label')),
      expert: Array.from({ length: layout.numExperts }, (_, e) => make(String(e), 'label expert-label')),
    };
    this.labels.replaceChildren(...this.labelEls.layer, ...this.labelEls.expert);
    this.placeLabels();
  }

  private placeLabels(): void {
    const layout = this.scene.layout;
    if (!layout) return;
    const vis = this.visibility();
    // Labels go on the grid edges nearest the camera; neighbours closer than a few pixels are skipped.
    const near = this.scene.cameraSide();
    const layerX = near.plusX ? layout.bounds.maxX + 0.7 : layout.bounds.minX - 0.7;
    const expertZ = near.plusZ ? layout.bounds.maxZ + 0.6 : layout.bounds.minZ - 0.6;
    let last: { x: number; y: number } | null = null;
    const far = (p: { x: number; y: number }, min: number) => !last || Math.hypot(p.x - last.x, p.y - last.y) >= min;
    this.labelEls.layer.forEach((span, l) => {
      const p = this.scene.project(layerX, 0, layout.rowZ[l]);
      const show = p !== null && vis[l] && far(p, 12);
      span.hidden = !show;
      if (show) {
        span.style.transform = `translate(${p!.x}px, ${p!.y}px) translate(-50%, -50%)`;
        last = p;
      }
    });
    last = null;
    this.labelEls.expert.forEach((span, e) => {
      const p = this.scene.project(layout.x0 + e, 0, expertZ);
      const show = p !== null && far(p, 16);
      span.hidden = !show;
      if (show) {
        span.style.transform = `translate(${p!.x}px, ${p!.y}px) translate(-50%, -50%)`;
        last = p;
      }
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Controls outside lil-gui

  private bindControls(): void {
    const click = (id: string, fn: () => unknown) => el(id).addEventListener('click', () => void this.guard(fn));
    click('forward', () => this.stepper?.forward(1));
    click('back', () => this.stepper?.back(1));
    click('reset', () => this.stepper?.reset());
    click('to-end', () => this.stepper && this.stepper.forward(Math.max(0, this.stepper.planned.length - this.stepper.position)));
    click('play', () => (this.stepper?.playing ? this.stepper.pause() : this.stepper?.play()));
    click('use-prompt', () => this.useText(el<HTMLTextAreaElement>('prompt').value, 'prompt', null));
    el('samples').addEventListener('change', () => {
      const v = el<HTMLSelectElement>('samples').value;
      const sample = this.model?.samples[Number(v)];
      if (v !== '' && sample) {
        el<HTMLTextAreaElement>('prompt').value = sample.text;
        void this.guard(() => this.useText(sample.text, sample.domain, Number(v), { genre: sample.genre, posSpans: sample.posSpans }));
      }
    });
    el('model-select').addEventListener('change', () => {
      const v = el<HTMLSelectElement>('model-select').value;
      if (v === 'open' || v === 'open-files') {
        this.syncModelSelect();
        el<HTMLInputElement>(v === 'open' ? 'folder-input' : 'files-input').click();
      } else void this.open(v);
    });
    click('inspect', () => this.inspect());
    click('compare', () => this.toggleCompare());
    click('export-png', async () => download(`moescope-${this.model?.name ?? 'view'}.png`, await this.scene.toPng()));
    click('export-json', () => this.exportTrace('json'));
    click('export-csv', () => this.exportTrace('csv'));
    click('copy-link', async () => {
      this.writeUrl();
      await navigator.clipboard?.writeText(location.href).catch(() => undefined);
      this.flash('Link to this view copied (it is also in the address bar).');
    });
    window.addEventListener('keydown', (ev) => {
      const target = ev.target as HTMLElement;
      if (target.closest('textarea, input, select')) return;
      if (ev.key === 'ArrowRight') void this.guard(() => this.stepper?.forward(1));
      else if (ev.key === 'ArrowLeft') void this.guard(() => this.stepper?.back(1));
      else if (ev.key === ' ') {
        ev.preventDefault();
        this.stepper?.playing ? this.stepper.pause() : this.stepper?.play();
      }
    });
  }

  async useText(text: string, domain: string, sample: number | null, labels: TextLabels = {}): Promise<void> {
    if (!this.stepper) return;
    this.textSource = { sample, text: sample === null ? text : null };
    el<HTMLSelectElement>('samples').value = sample === null ? '' : String(sample);
    this.selectedToken = null;
    this.metrics.clear(this.model!.config.moeLayers);
    await this.stepper.setText(text, domain, labels);
  }

  private exportTrace(kind: 'json' | 'csv'): void {
    const s = this.snapshot;
    const model = this.model;
    if (!s || !model || !this.stepper) {
      this.showError(new Error('Nothing to export yet: step through some tokens first.'));
      return;
    }
    const name = `moescope-trace-${model.name}-${s.position}`;
    if (kind === 'csv') download(`${name}.csv`, traceCsv(s, this.stepper.processed), 'text/csv');
    else {
      const { ablated, ...policy } = toPolicy(this.params, model.config.router.topK, this.ablated);
      const ablatedList = [...ablated.keys()].filter((i) => ablated[i]);
      download(
        `${name}.json`,
        traceJson(
          {
            model: model.name,
            numLayers: model.config.numLayers,
            numExperts: model.config.numExperts,
            topK: this.params.topK || model.config.router.topK,
            policy: { ...policy, ablated: ablatedList },
          },
          s,
          this.stepper.processed,
        ),
        'application/json',
      );
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Beyond the grid: expert inspector, checkpoint comparison

  private resetCompareAndInspector(): void {
    const model = this.model;
    (el('inspector') as HTMLCanvasElement).hidden = true;
    el('inspector-note').textContent = model?.weights
      ? 'Weight norms of each expert of the focus layer and how similar the experts are to each other.'
      : 'Needs a running model (its weights).';
    (el('inspect') as HTMLButtonElement).disabled = !model?.weights;
    const other = model ? compareCounterpart(model.id) : null;
    const button = el('compare') as HTMLButtonElement;
    button.disabled = other === null || !model?.session;
    button.textContent = other ? `compare with ${other.slice(5)}` : 'compare';
    (el('compare-canvas') as HTMLCanvasElement).hidden = true;
    el('compare-note').textContent = other
      ? 'Runs the other checkpoint of this model on the same tokens and shows where their routing differs.'
      : 'Needs two checkpoints of one model: the bundled demo model and its early checkpoint (<name>-early).';
  }

  /** Norms and similarity matrices of the focus layer's experts, read from the model's weights. */
  async inspect(): Promise<void> {
    const model = this.model;
    const focus = this.params.focusLayer;
    const reader = model?.weights;
    if (!model || !reader) throw new Error('The expert inspector needs a running model: this one is drawn from its config only.');
    if (!model.config.moeLayers[focus]) throw new Error(`Layer ${focus} is a dense layer: pick a MoE layer as focus layer.`);
    const note = el('inspector-note');
    note.textContent = `reading layer ${focus}'s expert weights (${formatBytes(await reader.bytesFor(focus))})…`;
    const w = await reader.read(focus);
    const weightSimilarity = cosineMatrix(expertVectors(w));
    const routerSimilarity = cosineMatrix(w.router);
    const canvas = el<HTMLCanvasElement>('inspector');
    canvas.hidden = false;
    drawInspector(canvas, { layer: focus, norms: expertNorms(w), weightSimilarity, routerSimilarity, colormap: this.params.colormap });
    // Numbering is arbitrary: experts with neighbouring ids are no more alike than any two experts.
    const E = model.config.numExperts;
    let near = 0, all = 0, nNear = 0, nAll = 0;
    for (let a = 0; a < E; a++) {
      for (let b = a + 1; b < E; b++) {
        all += weightSimilarity[a * E + b];
        nAll++;
        if (b === a + 1) {
          near += weightSimilarity[a * E + b];
          nNear++;
        }
      }
    }
    note.textContent =
      `Layer ${focus}: mean cosine between experts ${(all / Math.max(1, nAll)).toFixed(3)}, between experts with ` +
      `neighbouring ids ${(near / Math.max(1, nNear)).toFixed(3)}: ids carry no order (renumbering the experts and ` +
      'their router rows together leaves the model unchanged).';
  }

  /** Load (or drop) the other checkpoint and run it on the same tokens after every snapshot. */
  async toggleCompare(): Promise<void> {
    const model = this.model;
    if (this.compare) {
      this.compare.destroy();
      this.compare = null;
      this.resetCompareAndInspector();
      return;
    }
    const other = model ? compareCounterpart(model.id) : null;
    if (!model?.session || !other) return;
    try {
      const loaded = await this.loadById(other, (f, what) => this.progress(f, what));
      if (!loaded.session || loaded.config.numLayers !== model.config.numLayers || loaded.config.numExperts !== model.config.numExperts) {
        loaded.destroy();
        throw new Error(`${loaded.name} does not have ${model.name}'s architecture: nothing to compare`);
      }
      loaded.session.setPolicy(toPolicy(this.params, model.config.router.topK, this.ablated));
      this.compare = loaded;
      (el('compare') as HTMLButtonElement).textContent = `stop comparing with ${loaded.name}`;
      this.requestSnapshot();
    } finally {
      this.progress(null, '');
    }
  }

  /** Bring the compared checkpoint to the same tokens (common prefix kept) and draw where routing differs. */
  private async syncCompare(main: RoutingSnapshot): Promise<void> {
    const other = this.compare?.session;
    const stepper = this.stepper;
    if (!other || !stepper || !this.compare || !this.model) return;
    const ids = stepper.processed.slice(0, main.position).map((t) => t.id);
    let common = 0;
    while (common < other.tokens.length && common < ids.length && other.tokens[common] === ids[common]) common++;
    if (common < other.tokens.length) await other.back(other.tokens.length - common);
    if (ids.length > common) await other.feed(ids.slice(common));
    const snap = await other.snapshot();
    const agreement = routingAgreement(main, snap, ids.length);
    const canvas = el<HTMLCanvasElement>('compare-canvas');
    canvas.hidden = false;
    drawCompare(canvas, {
      names: [this.model.name, this.compare.name],
      perLayer: agreement.perLayer,
      perToken: agreement.perToken,
      labels: stepper.processed.slice(0, agreement.perToken.length / main.numLayers).map((t) => t.text),
      moeLayers: this.model.config.moeLayers,
    });
    el('compare-note').textContent =
      `${this.compare.name} against ${this.model.name}. Blue: both checkpoints sent the token to the same experts; red: different ones.`;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // URL state, messages, progress

  updateUrl(): void {
    if (this.urlTimer !== null) clearTimeout(this.urlTimer);
    this.urlTimer = setTimeout(() => this.writeUrl(), 300);
  }

  private writeUrl(): void {
    if (!this.model) return;
    const q = encodeUrlState({
      model: this.model.id,
      params: this.params,
      text: this.textSource.text,
      sample: this.textSource.sample,
      position: this.stepper?.position ?? 0,
      hiddenLayers: [...this.hidden].sort((a, b) => a - b),
      token: this.selectedToken,
    });
    history.replaceState(null, '', q ? `?${q}` : location.pathname);
  }

  private async guard(fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.showError(e);
    }
  }

  showError(e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    const box = document.createElement('div');
    box.className = 'error';
    box.setAttribute('role', 'alert');
    const text = document.createElement('span');
    text.textContent = message;
    const close = document.createElement('button');
    close.textContent = '×';
    close.setAttribute('aria-label', 'dismiss');
    close.addEventListener('click', () => box.remove());
    box.append(text, close);
    el('errors').append(box);
  }

  flash(message: string): void {
    const box = Object.assign(document.createElement('div'), { className: 'flash', textContent: message });
    el('errors').append(box);
    setTimeout(() => box.remove(), 3000);
  }

  progress(fraction: number | null, what: string): void {
    const bar = el('progress');
    bar.hidden = fraction === null;
    if (fraction === null) return;
    (bar.firstElementChild as HTMLElement).style.width = `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
    el('progress-text').textContent = what;
  }
}
