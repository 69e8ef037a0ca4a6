// Whole-model sessions for GPU tests: opened on the shared test device, destroyed when the test file ends; and the
// error measure the whole-model tests compare logits with.
import { afterAll } from 'vitest';
import { loadModel, type LoadOptions } from '../../src/loading/load-model';
import type { Session } from '../../src/engine/model/session';
import { nodeFolder } from '../../src/io/node-source';
import { testGpu } from './gpu';

/** An opener of sessions on the model folder `dir`; every session it opens is destroyed after the file's tests. */
export function sessionOpener(dir: string, options: LoadOptions): (overrides?: LoadOptions) => Promise<Session> {
  const sessions: Session[] = [];
  afterAll(() => sessions.forEach((s) => s.destroy()));
  return async (overrides = {}) => {
    const session = await loadModel(await testGpu(), await nodeFolder(dir), { ...options, ...overrides });
    sessions.push(session);
    return session;
  };
}

/** Relative error of a logits row: max |a − e| / max |e| (logits have no natural per-element scale); NaN → ∞. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return Number.isNaN(worst) ? Infinity : worst / scale;
}
