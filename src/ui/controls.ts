// The controls outside lil-gui: step buttons and keys, the position readout, the sample picker and prompt, the
// model picker, exports and the link button. They call the app; they keep no state of their own.
import type { Dashboard } from './context';
import { el } from './dom';
import { download, exportTrace } from './export';
import { flash, guard } from './messages';
import { sampleLabel } from './samples';
import type { TextLabels } from './stepper';

export interface ControlActions {
  open(id: string): Promise<unknown>;
  useText(text: string, domain: string, sample: number | null, labels?: TextLabels): Promise<void>;
  writeUrl(): void;
}

const STEPPING_IDS = ['reset', 'back', 'forward', 'play', 'to-end', 'prompt', 'use-prompt', 'samples'];

export class Controls {
  constructor(
    private readonly d: Dashboard,
    private readonly actions: ControlActions,
  ) {
    const click = (id: string, fn: () => unknown) => el(id).addEventListener('click', () => void guard(fn));
    const stepper = () => d.stepper;
    click('forward', () => stepper()?.forward(1));
    click('back', () => stepper()?.back(1));
    click('reset', () => stepper()?.reset());
    click('to-end', () => {
      const st = stepper();
      return st?.forward(Math.max(0, st.planned.length - st.position));
    });
    click('play', () => this.togglePlay());
    click('use-prompt', () => actions.useText(el<HTMLTextAreaElement>('prompt').value, 'prompt', null));
    el('samples').addEventListener('change', () => {
      const v = el<HTMLSelectElement>('samples').value;
      const sample = d.model?.samples[Number(v)];
      if (v !== '' && sample) {
        el<HTMLTextAreaElement>('prompt').value = sample.text;
        void guard(() => actions.useText(sample.text, sample.domain, Number(v), { genre: sample.genre, posSpans: sample.posSpans }));
      }
    });
    el('model-select').addEventListener('change', () => {
      const v = el<HTMLSelectElement>('model-select').value;
      if (v === 'open' || v === 'open-files') {
        this.syncModelSelect();
        el<HTMLInputElement>(v === 'open' ? 'folder-input' : 'files-input').click();
      } else void actions.open(v);
    });
    click('open-folder', () => el<HTMLInputElement>('folder-input').click());
    click('export-png', async () => download(`moescope-${d.model?.name ?? 'view'}.png`, await d.scene.toPng()));
    click('export-json', () => exportTrace(d, 'json'));
    click('export-csv', () => exportTrace(d, 'csv'));
    click('copy-link', async () => {
      actions.writeUrl();
      await navigator.clipboard?.writeText(location.href).catch(() => undefined);
      flash('Link to this view copied (it is also in the address bar).');
    });
    window.addEventListener('keydown', (ev) => {
      if ((ev.target as HTMLElement).closest('textarea, input, select')) return;
      if (ev.key === 'ArrowRight') void guard(() => stepper()?.forward(1));
      else if (ev.key === 'ArrowLeft') void guard(() => stepper()?.back(1));
      else if (ev.key === ' ') {
        ev.preventDefault();
        this.togglePlay();
      }
    });
    d.onStep(() => this.showPosition());
    d.state.subscribe((kind) => {
      if (kind === 'model') this.setModel();
    });
  }

  private togglePlay(): void {
    const st = this.d.stepper;
    if (st?.playing) st.pause();
    else st?.play();
  }

  /** Show the model in the pickers; stepping controls only for a running model. */
  private setModel(): void {
    const model = this.d.model;
    this.syncModelSelect();
    const samples = model?.samples ?? [];
    const select = el<HTMLSelectElement>('samples');
    select.replaceChildren(new Option(samples.length ? '(typed prompt)' : '(no samples)', ''));
    samples.forEach((s, i) => select.add(new Option(sampleLabel(s, i), String(i))));
    const running = model?.session != null;
    for (const id of STEPPING_IDS) el<HTMLButtonElement>(id).disabled = !running;
    el('stepper').classList.toggle('disabled', !running);
    el('position').textContent = running ? '0' : 'config only';
  }

  /** The picker shows the model on screen (after a failed open, or an "open…" entry, it goes back to it). */
  syncModelSelect(): void {
    if (this.d.model) el<HTMLSelectElement>('model-select').value = this.d.model.id;
  }

  /** Show where the text source is: a sample's index or the typed prompt. */
  showText(text: string, sample: number | null): void {
    el<HTMLTextAreaElement>('prompt').value = text;
    el<HTMLSelectElement>('samples').value = sample === null ? '' : String(sample);
  }

  private showPosition(): void {
    const st = this.d.stepper;
    if (!st) return;
    el('position').textContent = `${st.position} / ${st.mode === 'scan' ? st.planned.length : '∞'}`;
    el('play').textContent = st.playing ? '❚❚ pause' : '▶ play';
    // Play says when this GPU cannot keep the set speed (a step takes longer than 1 / speed).
    const rate = st.playRate;
    const slow = rate !== null && rate < st.speed * 0.9;
    const shown = rate === null ? '' : rate >= 10 ? rate.toFixed(0) : rate.toPrecision(2);
    el('play-rate').textContent =
      rate === null ? '' : slow ? `${shown} tokens/s: a step takes ${(1 / rate).toFixed(2)} s here, too slow for the ${st.speed} tokens/s set` : `${shown} tokens/s`;
    el('play-rate').classList.toggle('slow', slow);
    el('play').setAttribute('aria-label', st.playing ? 'pause' : 'play');
  }
}
