// The engine's own recorder: a session's routing ring (chosen experts, gate weights, router probabilities) read
// back after a run and written as a trace (src/trace). Joins engine buffers with the trace format, hence here.
import type { Session } from '../engine/model/session';
import { readBuffer } from '../engine/kernels/common';
import { K_MAX, NO_EXPERT } from '../model/limits';
import { traceMeta, UNKNOWN, type TraceMeta, type TraceSource } from '../trace/format';
import type { TraceArrays } from '../trace/writer';

export interface RecordedSequence {
  id: string;
  tokenIds: number[];
  promptLength: number;
  /** [tokens, moeLayers, k] chosen experts (the router's picks, before capacity). */
  experts: Int32Array;
  /** [tokens, moeLayers, k] gate weights. */
  weights: Float32Array;
  /** [tokens, moeLayers, experts] router probabilities (softmax or sigmoid scores). */
  probs: Float32Array;
}

/** Reads ring rows [0, position) of a session that ran one sequence from a reset. */
export async function recordSequence(session: Session, id: string, promptLength: number): Promise<RecordedSequence> {
  const c = session.config, r = session.routing;
  const T = session.tokens.length;
  if (T > r.ringCapacity) throw new RangeError(`${T} tokens do not fit the routing ring (${r.ringCapacity}); record shorter sequences`);
  const L = c.numLayers, E = c.numExperts, K = c.router.topK;
  const moe = c.moeLayers.flatMap((m, l) => (m ? [l] : []));
  const slots = T * L * K_MAX * 4;
  const [chosen, weights, probs] = await Promise.all([
    readBuffer(session.gpu, r.ringChosen, slots).then((b) => new Uint32Array(b)),
    readBuffer(session.gpu, r.ringWeights, slots).then((b) => new Float32Array(b)),
    readBuffer(session.gpu, r.ringProbs, T * L * E * 4).then((b) => new Float32Array(b)),
  ]);
  const M = moe.length;
  const out: RecordedSequence = {
    id, tokenIds: [...session.tokens], promptLength,
    experts: new Int32Array(T * M * K), weights: new Float32Array(T * M * K), probs: new Float32Array(T * M * E),
  };
  for (let t = 0; t < T; t++) {
    moe.forEach((l, m) => {
      for (let k = 0; k < K; k++) {
        const e = chosen[(t * L + l) * K_MAX + k];
        out.experts[(t * M + m) * K + k] = e === NO_EXPERT ? UNKNOWN : e;
        out.weights[(t * M + m) * K + k] = weights[(t * L + l) * K_MAX + k];
      }
      out.probs.set(probs.subarray((t * L + l) * E, (t * L + l + 1) * E), (t * M + m) * E);
    });
  }
  return out;
}

/** One trace from recorded sequences of one model (`configJson`: its config.json as read). */
export function traceFromRecording(
  session: Session, configJson: Record<string, unknown>, sequences: RecordedSequence[], source: TraceSource, tokenizer: string | null,
): { meta: TraceMeta; arrays: TraceArrays } {
  const c = session.config;
  let start = 0;
  const meta = traceMeta({
    config: configJson,
    tokenizer,
    source,
    moeLayers: c.moeLayers.flatMap((m, l) => (m ? [l] : [])),
    numExperts: c.numExperts,
    topK: c.router.topK,
    numTokens: sequences.reduce((n, s) => n + s.tokenIds.length, 0),
    sequences: sequences.map((s) => {
      const q = { id: s.id, start, length: s.tokenIds.length, promptLength: s.promptLength };
      start += q.length;
      return q;
    }),
    recorded: { tokenIds: true, tokenTexts: true, weights: true, router: 'probs' },
  });
  const cat = <A extends Int32Array | Float32Array>(make: (n: number) => A, parts: A[]): A => {
    const out = make(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const ids = sequences.flatMap((s) => s.tokenIds);
  return {
    meta,
    arrays: {
      experts: cat((n) => new Int32Array(n), sequences.map((s) => s.experts)),
      weights: cat((n) => new Float32Array(n), sequences.map((s) => s.weights)),
      router: cat((n) => new Float32Array(n), sequences.map((s) => s.probs)),
      tokenIds: Int32Array.from(ids),
      tokenTexts: ids.map((id) => session.tokenizer.piece(id).text),
    },
  };
}
