// The token strip: the text as tokens, processed ones coloured by their top expert in the focus layer, the current
// token highlighted, the selected one outlined. Token text is inserted with textContent only (never as HTML), so a
// token like `<img src=x onerror=alert(1)>` shows literally.
import type { TokenInfo } from './stepper';

/** What the strip shows of each position. */
export interface StripView {
  /** Tokens processed. */
  position: number;
  selected: number | null;
  /** Colour of processed token p (its top expert), or null while unknown. */
  colorOf(p: number): string | null;
  /** Surprisal of token p in bits (NaN unknown). */
  bitsOf(p: number): number;
  /** Whether capacity dropped all of token p's assignments in the focus layer. */
  droppedIn(p: number): boolean;
}

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

  /** Colour and mark the spans from what the view knows about each position. */
  update(v: StripView): void {
    const { position, selected } = v;
    this.spans.forEach((span, p) => {
      const processed = p < position;
      const bits = processed ? v.bitsOf(p) : NaN;
      const dropped = processed && v.droppedIn(p);
      const base = span.title.split(' · ')[0];
      span.title = [base, ...(dropped ? [`dropped by capacity in the focus layer: no expert processed it there`] : []), ...(Number.isFinite(bits) ? [`surprisal ${bits.toFixed(2)} bits`] : [])].join(' · ');
      span.classList.toggle('done', processed);
      span.classList.toggle('dropped', dropped);
      span.classList.toggle('current', p === position - 1);
      span.classList.toggle('selected', p === selected);
      const c = processed && !dropped ? v.colorOf(p) : null;
      span.style.setProperty('--expert', c ?? 'transparent');
    });
    const current = this.spans[position - 1];
    if (current && typeof current.scrollIntoView === 'function') current.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }
}
