// The token strip: the text as tokens, processed ones coloured by their top expert in the focus layer, the current
// token highlighted, the selected one outlined. Token text is inserted with textContent only (never as HTML), so a
// token like `<img src=x onerror=alert(1)>` shows literally.
import type { TokenInfo } from './stepper';

export class TokenStrip {
  private spans: HTMLSpanElement[] = [];

  constructor(
    private readonly root: HTMLElement,
    private readonly onPick: (position: number) => void,
  ) {
    root.addEventListener('click', (ev) => {
      const t = (ev.target as HTMLElement).closest('[data-pos]') as HTMLElement | null;
      if (t) this.onPick(Number(t.dataset.pos));
    });
  }

  /** Rebuild the spans for a new plan (text). */
  setTokens(tokens: readonly TokenInfo[]): void {
    this.spans = tokens.map((t, i) => {
      const span = document.createElement('span');
      span.className = t.domain === 'generated' ? 'tok gen' : 'tok';
      span.dataset.pos = String(i);
      span.textContent = t.text;
      span.title = `#${i} id ${t.id} (${t.domain})`;
      return span;
    });
    if (tokens.length === 0) {
      const empty = document.createElement('span');
      empty.className = 'empty';
      empty.textContent = 'No text: type a prompt or pick a sample.';
      this.root.replaceChildren(empty);
    } else {
      this.root.replaceChildren(...this.spans);
    }
  }

  get length(): number {
    return this.spans.length;
  }

  /**
   * Colour and mark the spans: `position` tokens processed, `colorOf(p)` the colour of processed token p
   * (null = unknown yet), `selected` the selected position or null, `bitsOf(p)` the surprisal of token p in bits
   * (NaN unknown), shown in its tooltip.
   */
  update(position: number, colorOf: (p: number) => string | null, selected: number | null, bitsOf: (p: number) => number): void {
    this.spans.forEach((span, p) => {
      const processed = p < position;
      const bits = bitsOf(p);
      const base = span.title.split(' · ')[0];
      span.title = processed && Number.isFinite(bits) ? `${base} · surprisal ${bits.toFixed(2)} bits` : base;
      span.classList.toggle('done', processed);
      span.classList.toggle('current', p === position - 1);
      span.classList.toggle('selected', p === selected);
      const c = processed ? colorOf(p) : null;
      span.style.setProperty('--expert', c ?? 'transparent');
    });
    const current = this.spans[position - 1];
    if (current && typeof current.scrollIntoView === 'function') current.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }
}
