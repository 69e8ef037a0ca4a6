// A full KV cache in the page: the stepper stops at the session's context length (not the model's maximum
// positions) with a message, in scan and in generate mode, and playing stops.
import { describe, expect, it } from 'vitest';
import { ContextFullError } from '../../src/engine/model/session';
import type { ModelSession } from '../../src/engine/session-api';
import { TokenStepper } from '../../src/ui/stepper';

/** A session with a 4-token KV cache in a model that allows 4096 positions; it only keeps the token ids. */
function fakeSession(): ModelSession {
  const tokens: number[] = [];
  const contextLength = 4;
  const full = (n: number) => {
    if (tokens.length + n > contextLength) throw new ContextFullError(contextLength, tokens.length, n);
  };
  return {
    config: { maxPositions: 4096 },
    // Play waits for each step's GPU work before the next.
    gpu: { device: { queue: { onSubmittedWorkDone: async () => {} } } },
    tokens,
    contextLength,
    feed: async (ids: number[]) => {
      full(ids.length);
      tokens.push(...ids);
    },
    generate: async () => {
      full(1);
      tokens.push(7);
      return 7;
    },
    back: async (n: number) => void tokens.splice(tokens.length - n, n),
    reset: async () => void tokens.splice(0),
    setPolicy: () => {},
  } as unknown as ModelSession;
}
const texts = { encode: (t: string) => [...t].map((c) => c.charCodeAt(0)), tokenText: (id: number) => String.fromCharCode(id) };

describe('stepper at a full context', () => {
  it('scan mode processes up to the context length, then stops with a message', async () => {
    const st = new TokenStepper(fakeSession(), texts);
    await st.setText('abcdef', 'prompt');
    expect(await st.forward(10)).toBe(4);
    await expect(st.forward(1)).rejects.toThrow("the model's context (4 tokens) is full");
    expect(st.position).toBe(4);
  });

  it('generate mode stops playing with the engine\'s message', async () => {
    const st = new TokenStepper(fakeSession(), texts);
    await st.setText('ab', 'prompt');
    await st.forward(2);
    st.mode = 'generate';
    st.speed = 1000;
    const error = new Promise<unknown>((ok) => (st.onError = ok));
    st.play();
    expect(String(await error)).toMatch(/the context of 4 tokens is full/);
    expect(st.playing).toBe(false);
    expect(st.position).toBe(4);
  });
});
