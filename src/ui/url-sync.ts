// Keeps the address bar in step with the state (model, params, text, position, hidden layers, selected token), a
// short while after the last change, so a link reopens the same view.
import type { Dashboard } from './context';
import { encodeUrlState } from './url-state';

const URL_DELAY_MS = 300;

export class UrlSync {
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly d: Dashboard) {
    d.state.subscribe((kind) => {
      if (kind !== 'hover') this.schedule();
    });
    d.onStep(() => this.schedule());
  }

  schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.write(), URL_DELAY_MS);
  }

  /** Write the URL now. */
  write(): void {
    const model = this.d.model;
    if (!model) return;
    const s = this.d.state;
    const q = encodeUrlState({
      model: model.id,
      params: s.params,
      text: s.text.text,
      sample: s.text.sample,
      position: this.d.stepper?.position ?? 0,
      hiddenLayers: [...s.hidden].sort((a, b) => a - b),
      token: s.selectedToken,
    });
    history.replaceState(null, '', q ? `?${q}` : location.pathname);
  }
}
