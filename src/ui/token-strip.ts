// The token strip: the text as tokens, processed ones coloured by their top expert in the focus layer, the current
// token highlighted, the selected one outlined. Token text is inserted with textContent only (never as HTML), so a
// token like `<img src=x onerror=alert(1)>` shows literally.
import type { TokenInfo } from './stepper';

/** Spans kept in the page at once: a longer text (a replayed trace) shows this many around the current token. */
export const STRIP_WINDOW = 256;

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
  private tokens: readonly TokenInfo[] = [];
  /** Position of spans[0]. */
  private first = 0;

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
    this.tokens = tokens;
    this.render(0);
  }

  /** Spans for positions [first, first + STRIP_WINDOW). */
  private render(first: number): void {
    const tokens = this.tokens;
    this.first = first;
    this.spans = tokens.slice(first, first + STRIP_WINDOW).map((t, j) => {
      const i = first + j;
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

  /** Tokens of the text the strip holds (its spans are a window of them). */
  get length(): number {
    return this.tokens.length;
  }

  /** Colour and mark the spans from what the view knows about each position. */
  update(v: StripView): void {
    const { position, selected } = v;
    const n = this.tokens.length;
    if (n > STRIP_WINDOW && (position - 1 < this.first + STRIP_WINDOW / 8 || position > this.first + (STRIP_WINDOW * 7) / 8)) {
      const first = Math.max(0, Math.min(n - STRIP_WINDOW, position - STRIP_WINDOW / 2));
      if (first !== this.first) this.render(first);
    }
    this.spans.forEach((span, j) => {
      const p = this.first + j;
      const processed = p < position;
      const bits = processed ? v.bitsOf(p) : NaN;
      const dropped = processed && v.droppedIn(p);
      const c = processed && !dropped ? v.colorOf(p) : null;
      // Processed, but outside the per-token record the view holds (a long replayed trace): no colour to show.
      const unrecorded = processed && !dropped && c === null;
      const base = span.title.split(' · ')[0];
      span.title = [
        base,
        ...(dropped ? [`dropped by capacity in the focus layer: no expert processed it there`] : []),
        ...(unrecorded ? ['processed; its experts are outside the per-token record this view keeps'] : []),
        ...(Number.isFinite(bits) ? [`surprisal ${bits.toFixed(2)} bits`] : []),
      ].join(' · ');
      span.classList.toggle('done', processed && !unrecorded);
      span.classList.toggle('unrecorded', unrecorded);
      span.classList.toggle('dropped', dropped);
      span.classList.toggle('current', p === position - 1);
      span.classList.toggle('selected', p === selected);
      span.style.setProperty('--expert', c ?? 'transparent');
    });
    const current = this.spans[position - 1 - this.first];
    if (current && typeof current.scrollIntoView === 'function') current.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }
}
