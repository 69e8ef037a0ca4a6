// The next-token distribution at one position as a ranked list: token text, a bar of its probability and the
// percentage; the token that actually came next (when known) is marked. Built from DOM nodes (textContent only).
import type { Candidate } from './predictions';
import { visible } from './heatmap';

export interface NextTokenData {
  /** What the list is about, e.g. 'after "The" (#0)'. */
  caption: string;
  top: readonly Candidate[];
  /** Display text of a token id. */
  text(id: number): string;
  /** The token that followed, when known. */
  actual: { id: number; prob: number; rank: number | null } | null;
  /** Entropy of the distribution, nats. */
  entropy: number;
  /** The same position under the original routing policy, while a what-if is on. */
  original?: {
    /** Probability of a token there (null when not known). */
    probOf(id: number): number | null;
    /** KL(original ‖ what-if), nats; null when a full row is missing. */
    kl: number | null;
    topId: number;
  };
}

export function drawNextTokens(root: HTMLElement, d: NextTokenData | null, empty: string): void {
  const el = (tag: string, cls: string, text = '') => Object.assign(document.createElement(tag), { className: cls, textContent: text });
  if (!d) {
    root.replaceChildren(el('div', 'note', empty));
    return;
  }
  const rows = d.top.map((c) => {
    const row = el('div', 'next-row');
    row.dataset.id = String(c.id);
    if (d.actual?.id === c.id) row.classList.add('actual');
    const bar = el('span', 'next-bar');
    bar.style.setProperty('--p', String(c.prob));
    const before = d.original?.probOf(c.id) ?? null;
    if (before !== null) {
      // The original probability as a ghost marker on the same bar.
      const ghost = el('i', 'next-ghost');
      ghost.style.setProperty('--q', String(before));
      ghost.title = `original: ${(before * 100).toFixed(1)}%`;
      bar.append(ghost);
    }
    const pct = el('span', 'next-p', `${(c.prob * 100).toFixed(1)}%`);
    if (before !== null) pct.title = `original ${(before * 100).toFixed(1)}%`;
    row.append(el('span', 'next-tok', visible(d.text(c.id))), bar, pct);
    return row;
  });
  const foot = el('div', 'note');
  const bits = (nats: number) => (nats / Math.LN2).toFixed(2);
  foot.textContent =
    `entropy ${bits(d.entropy)} bits` +
    (d.actual
      ? ` · next was "${visible(d.text(d.actual.id))}": p = ${(d.actual.prob * 100).toFixed(2)}%` +
        (d.actual.rank !== null ? `, rank ${d.actual.rank + 1}` : '') + `, surprisal ${bits(-Math.log(d.actual.prob))} bits`
      : '');
  const parts = [el('div', 'next-caption', d.caption), ...rows, foot];
  const o = d.original;
  if (o) {
    const top = d.top[0]?.id;
    parts.push(
      el(
        'div',
        'note next-original',
        `vs original routing (ghost marks): ` +
          (o.kl !== null ? `KL(original ‖ what-if) ${bits(o.kl)} bits; ` : '') +
          (top === o.topId ? `top token unchanged ("${visible(d.text(top))}")` : `top token "${visible(d.text(o.topId))}" → "${visible(d.text(top))}"`),
      ),
    );
  }
  root.replaceChildren(...parts);
}
