// Errors, short notices and the loading progress bar, shown in the page (never as alerts).
import { el, make } from './dom';

/** An error box with a dismiss button; stays until dismissed. */
export function showError(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  const box = make('div', 'error');
  box.setAttribute('role', 'alert');
  const close = make('button', '', '×');
  close.setAttribute('aria-label', 'dismiss');
  close.addEventListener('click', () => box.remove());
  box.append(make('span', '', message), close);
  el('errors').append(box);
}

/** A notice that stays until dismissed (what the page did on its own, e.g. after a lost device). */
export function showNotice(message: string): void {
  const box = make('div', 'notice');
  box.setAttribute('role', 'status');
  const close = make('button', '', '×');
  close.setAttribute('aria-label', 'dismiss');
  close.addEventListener('click', () => box.remove());
  box.append(make('span', '', message), close);
  el('errors').append(box);
}

/** A notice that disappears after three seconds. */
export function flash(message: string): void {
  const box = make('div', 'flash', message);
  el('errors').append(box);
  setTimeout(() => box.remove(), 3000);
}

/** The progress bar under the header: a fraction in [0, 1] and what is happening, or null to hide it. */
export function progress(fraction: number | null, what: string): void {
  const bar = el('progress');
  bar.hidden = fraction === null;
  if (fraction === null) return;
  (bar.firstElementChild as HTMLElement).style.width = `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
  el('progress-text').textContent = what;
}

/** Run `fn`, showing what it throws. */
export async function guard(fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (e) {
    showError(e);
  }
}
