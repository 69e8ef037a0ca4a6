// Small DOM helpers shared by the dashboard's modules.

/** The element of index.html with this id; a missing one is a bug in the page, so it throws. */
export function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no element #${id}`);
  return e as T;
}

/** A new element with a class name and text (always textContent, never HTML). */
export function make<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text = ''): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

/** A function that runs `fn` once at the next animation frame, however often it is called before then. */
export function onNextFrame(fn: () => void): () => void {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      fn();
    });
  };
}

/**
 * A function that runs `fn` once in the browser's next idle period (at most `timeoutMs` later), however often it is
 * called before then: for analysis panels that must never sit in a step's path. `settled` resolves once none is pending.
 */
export function onIdle(fn: () => void, timeoutMs: number): { schedule: () => void; settled: () => Promise<void> } {
  let pending: Promise<void> | null = null;
  return {
    schedule() {
      pending ??= new Promise<void>((resolve) =>
        requestIdleCallback(
          () => {
            pending = null;
            try {
              fn();
            } finally {
              resolve();
            }
          },
          { timeout: timeoutMs },
        ),
      );
    },
    settled: async () => {
      while (pending) await pending;
    },
  };
}
