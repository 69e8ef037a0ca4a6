// window.__moescope: what the end-to-end tests drive and inspect, installed by main.ts on the development server only
// (never in a production build). Reading the renderer's storage buffer back (instanceValues) maps a buffer; only
// tests call it, never the app's own frame or step paths.
import { readF32 } from '../engine/kernels/common';
import { countsFromRing } from '../viz/panels/stats';
import { instanceOf } from '../viz/layout';
import type { App } from './app';
import type { Params } from './params';

declare global {
  interface Window {
    __moescope?: ReturnType<typeof makeHook>;
  }
}

const nextFrame = () => new Promise<void>((r) => requestAnimationFrame(() => r()));

function makeHook(app: App) {
  const hook = {
    app,
    get inFrame(): boolean {
      return app.frameLoop.inFrame;
    },
    modelId: () => app.model?.id ?? null,
    /** What the pathways panel drew last, typed arrays as plain arrays. */
    pathways() {
      const d = app.pathways.panel.data;
      return d && { ...d, coactivation: Array.from(d.coactivation), transitions: d.transitions && Array.from(d.transitions) };
    },
    /** What the attention-flow panel drew last and the engine's probe read it came from, as plain arrays. */
    attention() {
      const d = app.attention.panel.data;
      const f = app.attention.flow;
      return {
        recording: app.attention.recording,
        drawn: d && { ...d, values: Array.from(d.values), sink: d.sink && Array.from(d.sink), tokens: [...d.tokens] },
        flow: f && { ...f, weights: Array.from(f.weights), sink: Array.from(f.sink) },
      };
    },
    /** The causal atlas the dashboard ran last: Δ log-likelihood per [layer, expert] and the ranked entries. */
    atlas() {
      const a = app.atlas.atlas;
      return a && { delta: Array.from(a.delta), entries: a.result.entries, selected: app.atlas.selectedEntry() };
    },
    hasSession: () => app.model?.session != null,
    position: () => app.stepper?.position ?? 0,
    frames: () => app.frameLoop.frames,
    snapshots: () => app.snapshots.count,
    /** CPU ms of the most recent `n` frames. */
    frameTimes: (n = 120): number[] => app.frameLoop.recent(n),
    async waitFrames(n: number): Promise<void> {
      for (let i = 0; i < n; i++) await nextFrame();
    },
    /** Engine calls done, a frame drawn after them, GPU work finished. */
    async settle(): Promise<void> {
      await app.stepper?.idle();
      await app.snapshots.settled();
      await app.pathways.settled();
      await nextFrame();
      await nextFrame();
      await app.gpu.device.queue.onSubmittedWorkDone();
    },
    async step(n = 1): Promise<number> {
      const done = (await app.stepper?.forward(n)) ?? 0;
      await hook.settle();
      return done;
    },
    async back(n = 1): Promise<number> {
      const done = (await app.stepper?.back(n)) ?? 0;
      await hook.settle();
      return done;
    },
    async useText(text: string): Promise<void> {
      await app.useText(text, 'prompt', null);
      await hook.settle();
    },
    async setParam<K extends keyof Params>(key: K, value: Params[K]): Promise<void> {
      app.state.setParam(key, value);
      await hook.settle();
    },
    async toggleLayer(layer: number, shown: boolean): Promise<void> {
      app.state.setLayerShown(layer, shown);
      await hook.settle();
    },
    open: (id: string) => app.open(id),
    layout() {
      const g = app.scene.layout;
      if (!g) return null;
      return {
        count: g.count, numLayers: g.numLayers, numExperts: g.numExperts, layer: [...g.layer], expert: [...g.expert], kind: [...g.kind],
        columns: g.columns, colFirst: [...g.colFirst], groupSize: g.groupSize, drill: g.drill,
      };
    },
    /** The renderer's per-instance values ([instances] × (height, colour t, raw value, visible)), read back. */
    async instanceValues(): Promise<number[]> {
      await hook.settle();
      const buffer = app.scene.valuesBuffer();
      if (!buffer) return [];
      return [...(await readF32(app.gpu, buffer, (app.scene.layout?.count ?? 0) * 4))];
    },
    /** The engine's routing record now: counts buffers and counts recomputed from the per-token ring. */
    async engineState() {
      const session = app.model?.session;
      if (!session || !app.stepper) return null;
      const s = await app.stepper.run(() => session.snapshot());
      return {
        position: s.position,
        counts: [...s.counts],
        stepCounts: [...s.stepCounts],
        ringCounts: [...countsFromRing(s)],
        chosen: [...s.chosen],
      };
    },
    /** Client coordinates of the ground point under the centre of the bar that draws a routed expert. */
    cellPoint(layer: number, expert: number): { x: number; y: number } | null {
      const g = app.scene.layout;
      const i = g ? instanceOf(g, layer, expert) : -1;
      if (!g || i < 0) return null;
      const p = app.scene.project(g.rect[i * 4], 0, g.rect[i * 4 + 1]);
      const r = app.scene.canvas.getBoundingClientRect();
      return p && { x: r.left + p.x, y: r.top + p.y };
    },
    stripTexts: () => [...document.querySelectorAll('#strip .tok')].map((e) => e.textContent ?? ''),
    errors: () => [...document.querySelectorAll('#errors .error')].map((e) => e.textContent ?? ''),
    notices: () => [...document.querySelectorAll('#errors .notice')].map((e) => e.textContent ?? ''),
    /** Destroys the GPU device, as a driver reset or a lost GPU would. */
    loseDevice: () => app.gpu.destroy(),
    async png(): Promise<number> {
      return (await app.scene.toPng()).size;
    },
  };
  return hook;
}

export function installTestHook(app: App): void {
  window.__moescope = makeHook(app);
}
