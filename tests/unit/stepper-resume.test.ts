// After a lost device the page brings a new session to the old stepper's tokens (TokenStepper.resume): through the
// session's own replay of its steps where it has one, else by feeding the tokens again (a replayed trace); the plan,
// the processed tokens (generated ones with their labels) and the events the panels rebuild from come back.
import { describe, expect, it } from 'vitest';
import type { SessionState } from '../../src/engine/model/session';
import type { ModelSession } from '../../src/engine/session-api';
import { TokenStepper } from '../../src/ui/stepper';

const texts = { encode: (t: string) => [...t].map((c) => c.charCodeAt(0)), tokenText: (id: number) => String.fromCharCode(id) };

function fakeSession(withReplay: boolean) {
  const calls: string[] = [];
  const tokens: number[] = [];
  const session = {
    config: {},
    tokens,
    contextLength: 64,
    feed: async (ids: number[]) => void (calls.push(`feed ${ids.join(',')}`), tokens.push(...ids)),
    generate: async () => (tokens.push(122), 122),
    reset: async () => void (calls.push('reset'), tokens.splice(0)),
    setPolicy: () => {},
    ...(withReplay ? { replay: async (s: SessionState) => void (calls.push(`replay ${s.tokens.join(',')} in ${s.steps.length} steps`), tokens.splice(0, tokens.length, ...s.tokens)) } : {}),
  };
  return { session: session as unknown as ModelSession, calls, tokens };
}

/** A stepper that scanned "abc", then generated two tokens. */
async function lostStepper() {
  const st = new TokenStepper(fakeSession(false).session, texts);
  await st.setText('abc', 'prompt');
  await st.forward(3);
  st.mode = 'generate';
  await st.forward(2);
  return st.tokens();
}

const state: SessionState = { tokens: [97, 98, 99, 122, 122], steps: [], policy: null as never, drawn: 2 };
state.steps = [{ size: 3, policy: state.policy }, { size: 1, policy: state.policy }, { size: 1, policy: state.policy }];

describe('stepper resume on a new session', () => {
  it('replays the session state where the session can, and restores plan, tokens and labels', async () => {
    const saved = await lostStepper();
    const { session, calls, tokens } = fakeSession(true);
    const st = new TokenStepper(session, texts);
    const events: string[] = [];
    st.onChange((k) => events.push(`${k} at ${st.position}`));
    await st.resume(saved, state);
    expect(calls).toEqual(['replay 97,98,99,122,122 in 3 steps']);
    expect(tokens).toEqual([97, 98, 99, 122, 122]);
    expect(st.position).toBe(5);
    expect(st.processed.map((t) => [t.text, t.domain])).toEqual([['a', 'prompt'], ['b', 'prompt'], ['c', 'prompt'], ['z', 'generated'], ['z', 'generated']]);
    expect(st.planned.length).toBe(5);
    // 'plan' first (panels clear what they derived from the old text), then one 'forward' with every token in place.
    expect(events).toEqual(['plan at 0', 'forward at 5']);
  });

  it('without a replay (a trace) or a saved state, feeds the processed tokens again after a reset', async () => {
    const saved = await lostStepper();
    for (const [withReplay, s] of [[false, state], [true, undefined]] as const) {
      const { session, calls } = fakeSession(withReplay);
      const st = new TokenStepper(session, texts);
      await st.resume(saved, s);
      expect(calls).toEqual(['reset', 'feed 97,98,99,122,122']);
      expect(st.position).toBe(5);
    }
  });
});
