// The dashboard: holds one model at a time (a running ModelSession, or a config-only skeleton) and wires the modules
// around it. What the user chose lives in DashboardState; routing data reaches the panels through the SnapshotPump;
// each module (panels, token view, pointer, labels, URL, compare, inspector, controls) subscribes to what it shows.
// This file owns the model's lifecycle, the engine's routing policy and the 3D scene's settings.
import { GpuDeviceLostError, type Gpu } from '../engine/gpu';
import type { SessionState } from '../engine/session-api';
import { emptyRoutingSources, type RoutingViewSources } from '../viz/instance-values';
import { ModelInfoPanel } from '../viz/panels/model-info';
import { GridScene } from '../viz/scene';
import { isGroupBar } from '../viz/layout';
import { AxisLabels } from './axis-labels';
import { BaselineStore } from './baseline';
import { CompareMode, type ModelLoader } from './compare-mode';
import type { Dashboard } from './context';
import { Controls } from './controls';
import { el } from './dom';
import { FrameLoop } from './frame-loop';
import { ParamsGui } from './gui';
import { InspectorPanel } from './inspector-panel';
import { PlacementPanel } from './placement-panel';
import { LayersList } from './layers-list';
import { showError, progress } from './messages';
import type { LoadedModel } from './models';
import { OutputPanel } from './output-panel';
import { OutputRecord } from './output-record';
import { GridLegend } from './grid-legend';
import { GridPointer } from './pointer';
import { PathwaysView } from './pathways-panel';
import { AttentionView } from './attention-panel';
import { AtlasView } from './atlas-panel';
import { RoutingPanels } from './routing-panels';
import { SnapshotPump } from './snapshots';
import { DashboardState, type ChangeKind } from './state';
import { recoverOnDeviceLoss } from './device-recovery';
import type { Baseline } from './baseline';
import { NumericsNotice } from './numerics-notice';
import { TokenStepper, type StepListener, type StepperTokens, type TextLabels } from './stepper';
import { TokenView } from './token-view';
import { UrlSync } from './url-sync';
import { WhatIfPanel } from './what-if';
import { decodeUrlState } from './url-state';
import { DEFAULT_PARAMS, toPolicy } from './params';
import { DEFAULT_PROMPT } from './samples';

/** What a model was showing, kept to bring it back on a new device (see device-recovery.ts). */
export interface SavedSession {
  tokens: StepperTokens | null;
  session: SessionState | undefined;
  baseline: Baseline | null;
  recordIsOriginal: boolean;
}

/** Errors of work that was in flight when the device went: the recovery notice speaks for them. */
const showUnlessLost = (e: unknown) => {
  if (!(e instanceof GpuDeviceLostError)) showError(e);
};

export class App implements Dashboard {
  readonly state = new DashboardState();
  readonly scene: GridScene;
  readonly snapshots = new SnapshotPump(showUnlessLost);
  readonly output = new OutputRecord();
  readonly baseline = new BaselineStore();
  /** Whether the session's routing record was made under the original policy (so it can serve as a baseline). */
  private recordIsOriginal = true;
  /** Whether the session routes under the original policy now. */
  private sessionOriginal = true;
  readonly frameLoop: FrameLoop;
  readonly pathways: PathwaysView;
  readonly attention: AttentionView;
  readonly atlas: AtlasView;
  readonly compare: CompareMode;
  model: LoadedModel | null = null;
  stepper: TokenStepper | null = null;

  private skeleton: (RoutingViewSources & { destroy(): void }) | null = null;
  private readonly stepListeners = new Set<StepListener>();
  private readonly gui: ParamsGui;
  private readonly layers: LayersList;
  private readonly info: ModelInfoPanel;
  private readonly labels: AxisLabels;
  private readonly controls: Controls;
  private readonly url: UrlSync;
  /** Model switches in order (see setModel). */
  private switches: Promise<void> = Promise.resolve();
  private switching = false;
  /** Kinds of state change that arrived during a switch. */
  private readonly held = new Set<ChangeKind>();

  constructor(
    /** Replaced by useGpu after a lost device. */
    public gpu: Gpu,
    /** Loads a model by id ('demo:<name>', 'config:<file>'); the app keeps the current one if it throws. */
    private readonly loadById: ModelLoader,
  ) {
    this.scene = new GridScene(el<HTMLCanvasElement>('grid'), gpu.device, !gpu.adapter.software);
    this.labels = new AxisLabels(this);
    this.frameLoop = new FrameLoop(this.scene, () => this.labels.place());
    this.gui = new ParamsGui(el('gui'), this.state.params, (key) => this.state.paramChanged(key), {
      clearAblations: () => this.state.clearAblations(),
      ablateSelected: () => this.ablateSelected(),
      resetCamera: () => this.scene.frameGrid(),
    });
    this.layers = new LayersList(el('layers'), (l, shown) => this.state.setLayerShown(l, shown), (l) => this.state.setParam('soloLayer', l));
    this.info = new ModelInfoPanel(el('model-info'));
    this.state.subscribe((kind) => this.onState(kind));
    this.snapshots.subscribe(() => this.showTimings());
    new OutputPanel(this);
    new RoutingPanels(this);
    new WhatIfPanel(this);
    this.pathways = new PathwaysView(this);
    this.attention = new AttentionView(this);
    this.atlas = new AtlasView(this);
    new TokenView(this);
    new GridPointer(this);
    new GridLegend(this);
    new InspectorPanel(this);
    this.compare = new CompareMode(this, loadById);
    new PlacementPanel(this);
    this.url = new UrlSync(this);
    this.controls = new Controls(this, { open: (id) => this.open(id), useText: (...a) => this.useText(...a), writeUrl: () => this.url.write() });
    new ResizeObserver(() => this.resize()).observe(el('view'));
    gpu.onError((e) => showError(e));
    new NumericsNotice(this);
    recoverOnDeviceLoss(this, loadById);
  }

  /** Continue on a new device (the old one was lost): the 3D view draws with it and every model loads on it. */
  async useGpu(gpu: Gpu): Promise<void> {
    this.gpu = gpu;
    gpu.onError((e) => showError(e));
    await this.scene.setDevice(gpu.device);
  }

  /** The current model's tokens, its session's steps and the what-if baseline, once queued engine calls are done. */
  async save(): Promise<SavedSession> {
    this.stepper?.pause();
    await this.stepper?.idle();
    return {
      tokens: this.stepper?.tokens() ?? null,
      session: this.model?.session?.state,
      baseline: this.baseline.current,
      recordIsOriginal: this.recordIsOriginal,
    };
  }

  async init(): Promise<void> {
    await this.scene.init();
    this.resize();
    this.frameLoop.start();
  }

  onStep(fn: StepListener): void {
    this.stepListeners.add(fn);
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
      await this.setModel(await this.loadById(id, progress));
      return true;
    } catch (e) {
      showError(e);
      this.controls.syncModelSelect();
      return false;
    } finally {
      progress(null, '');
    }
  }

  /**
   * Make `model` current. Switches run one at a time; while one runs, changes to the state are held back (the old
   * grid and engine and the new state differ in shape) and applied to the new model once it is in place.
   */
  setModel(model: LoadedModel, restore = decodeUrlState(''), saved?: SavedSession): Promise<void> {
    const run = this.switches.then(async () => {
      this.switching = true;
      try {
        await this.swapModel(model, restore, saved);
      } finally {
        this.switching = false;
        const held = [...this.held];
        this.held.clear();
        for (const kind of held) this.onState(kind);
      }
    });
    this.switches = run.catch(() => undefined);
    return run;
  }

  /**
   * `saved`: the same model loaded again on a new device; the dashboard's state (params, ablations, selection) stays
   * and the saved tokens are replayed instead of the restore's text and position.
   */
  private async swapModel(model: LoadedModel, restore: ReturnType<typeof decodeUrlState>, saved?: SavedSession): Promise<void> {
    const { config } = model;
    const old = { model: this.model, stepper: this.stepper, skeleton: this.skeleton };
    // Detach the old stepper first: work issued during the switch must not queue on a model about to be destroyed.
    this.stepper = null;
    old.stepper?.pause();
    await old.stepper?.idle();

    const skeleton = model.session ? null : emptyRoutingSources(this.gpu.device, config.numLayers, config.numExperts);
    const sources: RoutingViewSources = model.session ? model.session.routing : skeleton!;
    if (!saved) this.state.reset(config.numLayers, config.numExperts, restore);
    this.snapshots.attach(null, null);
    await this.scene.setModel(config, sources, this.state.layoutOptions(), this.state.view(), this.state.visibility());

    // The new model is in place: release the old one.
    old.skeleton?.destroy();
    if (old.model && old.model !== model) old.model.destroy();
    this.model = model;
    this.skeleton = skeleton;
    this.stepper = model.session && model.tokenizer ? new TokenStepper(model.session, model.tokenizer) : null;

    this.frameLoop.restart();
    this.gui.setLayers(config.numLayers);
    this.gui.setAblatedCount(0);
    this.gui.setRoutingEnabled(model.session !== null && !model.replay);
    this.gui.setRoutingShown(!model.replay);
    this.layers.setModel(config.moeLayers);
    el<HTMLDetailsElement>('layers-box').open = config.numLayers <= 8;
    this.layers.update({ hidden: this.state.hidden, solo: this.state.params.soloLayer });
    this.info.setModel(config, model.parameters, model.weightFormats);
    this.info.setTimings(null, model.session ? 'GPU timings appear after the first steps.' : 'Not running: no GPU timings.');
    el('model-note').textContent = model.note;
    el('model-note').title = model.note;
    el('model-name').textContent = model.name;
    this.state.modelReady();
    this.refuseUnrecorded();

    const stepper = this.stepper;
    if (model.session && stepper) {
      this.snapshots.attach(model.session, stepper);
      stepper.onError = showUnlessLost;
      stepper.onChange((kind) => {
        if (kind === 'plan') {
          // A new text is routed under the policy in force: there is no original record of it.
          this.baseline.clear();
          this.recordIsOriginal = this.sessionOriginal;
        }
        for (const fn of this.stepListeners) fn(kind);
        this.snapshots.request();
      });
      this.applyStepperParams();
      // A link with a what-if is stepped under the original policy first, so the what-if has its baseline.
      const topK = config.router.topK;
      const whatIf = !this.state.isOriginalPolicy(topK) && restore.position > 0;
      model.session.setPolicy(whatIf ? toPolicy(DEFAULT_PARAMS, topK, this.state.ablated) : this.state.policy(topK));
      this.sessionOriginal = this.recordIsOriginal = whatIf || this.state.isOriginalPolicy(topK);
      this.baseline.clear();
      if (saved?.tokens) {
        await stepper.resume(saved.tokens, saved.session);
        this.recordIsOriginal = saved.recordIsOriginal;
        if (saved.baseline) void this.baseline.capture(Promise.resolve(saved.baseline.routing), saved.baseline.output);
        this.url.schedule();
        return;
      }
      const sample = restore.text === null ? (restore.sample ?? 0) : null;
      const chosen = sample === null ? undefined : model.samples[sample];
      const text = restore.text ?? chosen?.text ?? (model.samples.length === 0 ? DEFAULT_PROMPT : '');
      this.state.text = { sample, text: restore.text };
      this.controls.showText(text, sample);
      // Under the original policy the text is fed in plain steps (no capacity windows) whatever the params say.
      if (whatIf) stepper.rerunSteps = false;
      await stepper.setText(text, chosen?.domain ?? 'prompt', { genre: chosen?.genre, posSpans: chosen?.posSpans }, restore.position);
      this.applyStepperParams();
      if (whatIf) {
        // The baseline keeps the original predictions too: wait for their read-back before the what-if replaces them.
        await stepper.idle();
        await this.output.settled();
        await this.applyPolicy();
      }
      if (restore.token !== null && restore.token < stepper.position) this.state.selectToken(restore.token);
    }
    this.url.schedule();
  }

  /** Scan a new text from its start. */
  async useText(text: string, domain: string, sample: number | null, labels: TextLabels = {}): Promise<void> {
    if (!this.stepper) return;
    this.state.text = { sample, text: sample === null ? text : null };
    this.controls.showText(text, sample);
    this.state.selectToken(null);
    await this.stepper.setText(text, domain, labels);
  }

  private showTimings(): void {
    const timings = this.model?.timings?.();
    if (timings) this.info.setTimings(timings.kernels, timings.note, timings.memory);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // State → engine and scene

  private onState(kind: ChangeKind): void {
    if (!this.model) return;
    if (this.switching) {
      this.held.add(kind);
      return;
    }
    if (kind === 'routing') {
      this.applyStepperParams();
      this.scene.setAblated(this.state.ablated);
      this.gui.setAblatedCount(this.state.ablatedCount);
      void this.applyPolicy();
    } else if (kind === 'view') {
      if (!this.refuseUnrecorded()) this.scene.setView(this.state.view());
    }
    else if (kind === 'grid') void this.rebuildGrid();
    else if (kind === 'layers') {
      this.scene.setVisibility(this.state.visibility());
      this.layers.update({ hidden: this.state.hidden, solo: this.state.params.soloLayer });
      this.gui.refresh();
    } else if (kind === 'playback') this.applyStepperParams();
  }

  /**
   * Send the routing policy to the engine and replay the text up to the current position under it. Leaving the
   * original policy keeps its record as the baseline (queued before the replay); returning to it drops the baseline.
   */
  async applyPolicy(): Promise<void> {
    const session = this.model?.session;
    const stepper = this.stepper;
    if (!session || !stepper) return;
    const topK = this.model!.config.router.topK;
    const policy = this.state.policy(topK);
    const original = this.state.isOriginalPolicy(topK);
    await stepper.run(async () => {
      if (original) this.baseline.clear();
      else if (this.recordIsOriginal && stepper.position > 0) void this.baseline.capture(session.snapshot(), this.output.copy());
      session.setPolicy(policy);
      this.sessionOriginal = this.recordIsOriginal = original;
    });
    await stepper.rerun();
  }

  private applyStepperParams(): void {
    const st = this.stepper;
    if (!st) return;
    const p = this.state.params;
    st.mode = p.stepMode;
    st.speed = p.speed;
    st.rerunSteps = p.capacityFactor > 0;
    st.sampling = { temperature: p.sampleTemperature, topP: p.topP, seed: p.sampleSeed };
  }

  private async rebuildGrid(): Promise<void> {
    const model = this.model;
    if (!model) return;
    const sources = model.session ? model.session.routing : this.skeleton!;
    await this.scene.setModel(model.config, sources, this.state.layoutOptions(), this.state.view(), this.state.visibility());
    this.scene.setAblated(this.state.ablated);
    this.state.layoutReady();
  }

  /** A replayed trace has no probability mass to draw: say why and show the load instead of drawing zeros. */
  private refuseUnrecorded(): boolean {
    const why = this.model?.replay?.probs;
    if (!why || this.state.params.mode !== 'probability') return false;
    showError(new Error(`The probability view needs router probabilities: ${why}. Showing the load.`));
    this.state.setParam('mode', 'load');
    this.gui.refresh();
    return true;
  }

  private ablateSelected(): void {
    const layout = this.scene.layout;
    const cell = this.state.selectedCell;
    if (!layout || cell < 0 || layout.expert[cell] < 0) {
      showError(new Error('Click a routed expert in the grid first, then ablate it.'));
      return;
    }
    if (isGroupBar(layout, cell)) {
      showError(new Error('That bar is a group of experts: open it (click), then pick one expert to ablate.'));
      return;
    }
    this.state.toggleAblation(layout.layer[cell], layout.expert[cell]);
  }
}
