// lil-gui bound to the one typed Params object. Keys are the params' identifiers; labels are set with .name().
// Every change calls `onChange(key)`; the app decides what to update (engine policy, view, playback).
import GUI, { type Controller } from 'lil-gui';
import { COLORMAP_NAMES } from '../viz/colormaps';
import { VIEW_MODES } from '../viz/instance-values';
import { OVERFLOW_POLICIES, RANGES, STEP_MODES, type Params } from './params';

export interface GuiActions {
  clearAblations(): void;
  ablateSelected(): void;
  resetCamera(): void;
}

const VIEW_MODE_LABELS: Record<(typeof VIEW_MODES)[number], string> = {
  load: 'cumulative load',
  current: 'current token',
  probability: 'probability mass',
  dropped: 'dropped / re-routed',
  atlas: 'causal atlas (Δ log-likelihood)',
};

export class ParamsGui {
  readonly gui: GUI;
  private readonly controllers = new Map<keyof Params, Controller>();
  private readonly layerControllers: Controller[] = [];
  private ablationInfo = { count: '0 experts' };
  private readonly routing: GUI;

  constructor(
    container: HTMLElement,
    private readonly params: Params,
    onChange: (key: keyof Params) => void,
    actions: GuiActions,
  ) {
    // Its stylesheet is part of ours (lil-gui.css): no <style> element injected, as the page's CSP requires.
    this.gui = new GUI({ container, title: 'Controls', injectStyles: false });
    const add = (folder: GUI, key: keyof Params, label: string, options?: unknown) => {
      const range = (RANGES as Partial<Record<keyof Params, readonly [number, number, number]>>)[key];
      const c = options
        ? folder.add(params, key, options as Record<string, unknown>)
        : range
          ? folder.add(params, key, range[0], range[1], range[2])
          : folder.add(params, key);
      c.name(label).onChange(() => onChange(key));
      this.controllers.set(key, c);
      return c;
    };

    const routing = (this.routing = this.gui.addFolder('Routing what-ifs'));
    add(routing, 'topK', 'k (0 = model)');
    add(routing, 'noiseStd', 'noise σ on logits');
    add(routing, 'noiseSeed', 'noise seed');
    add(routing, 'temperature', 'router temperature');
    add(routing, 'capacityFactor', 'capacity factor per step (0 = ∞)');
    add(routing, 'overflow', 'overflow policy', { 'drop': OVERFLOW_POLICIES[0], 're-route to next best': OVERFLOW_POLICIES[1] });
    routing.add(actions, 'ablateSelected').name('ablate selected expert');
    routing.add(actions, 'clearAblations').name('clear ablations');
    routing.add(this.ablationInfo, 'count').name('ablated').disable();

    const view = this.gui.addFolder('View');
    add(view, 'mode', 'show', Object.fromEntries(VIEW_MODES.map((m) => [VIEW_MODE_LABELS[m], m])));
    add(view, 'colormap', 'colour map', [...COLORMAP_NAMES]);
    add(view, 'heightScale', 'height');
    add(view, 'collapseDense', 'collapse dense layers');
    add(view, 'groupExperts', 'group experts (> 64)');
    this.layerControllers.push(add(view, 'soloLayer', 'solo layer', { none: -1 }));
    this.layerControllers.push(add(view, 'focusLayer', 'focus layer (strip, heatmap)', { 0: 0 }));
    view.add(actions, 'resetCamera').name('reset camera');
    view.close();

    const play = this.gui.addFolder('Playback');
    add(play, 'stepMode', 'mode', { 'scan (teacher-forced)': STEP_MODES[0], 'generate (decode)': STEP_MODES[1] });
    add(play, 'speed', 'tokens / second');
    add(play, 'sampleTemperature', 'sampling temperature');
    add(play, 'topP', 'top-p');
    add(play, 'sampleSeed', 'sampling seed');
    play.close();
  }

  /** Layer dropdowns for a model with `numLayers` layers. */
  setLayers(numLayers: number): void {
    const layers = Array.from({ length: numLayers }, (_, l) => l);
    const [solo, focus] = this.layerControllers;
    solo.options({ none: -1, ...Object.fromEntries(layers.map((l) => [`L${l}`, l])) });
    focus.options(Object.fromEntries(layers.map((l) => [`L${l}`, l])));
    this.refresh();
  }

  setAblatedCount(n: number): void {
    this.ablationInfo.count = `${n} expert${n === 1 ? '' : 's'}`;
    this.refresh();
  }

  /** Show or hide the what-if folder (a replayed trace cannot run what-ifs: nothing is routed live). */
  setRoutingShown(shown: boolean): void {
    this.routing.show(shown);
  }

  /** Disable routing controls (config-only models have no engine to steer). */
  setRoutingEnabled(enabled: boolean): void {
    for (const key of ['topK', 'noiseStd', 'noiseSeed', 'temperature', 'capacityFactor', 'overflow'] as const) {
      this.controllers.get(key)?.enable(enabled);
    }
  }

  /** Show the params' current values (after programmatic changes). */
  refresh(): void {
    // options() rebuilt controllers; re-find them through the GUI so every one displays the live value.
    for (const c of this.gui.controllersRecursive()) c.updateDisplay();
  }
}
