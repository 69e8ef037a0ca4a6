// Writing a trace: metadata + typed arrays → one safetensors file (src/io/safetensors.ts encodes the container).
// Every array is checked against the metadata first, so a writer bug fails here rather than in a reader.
import { encodeSafetensors, type TensorToWrite } from '../io/safetensors';
import { METADATA_KEY, TENSORS, UNKNOWN, UNKNOWN_STORED, expertDtypeFor, metaProblems, type TraceMeta } from './format';

export interface TraceArrays {
  /** [tokens, moeLayers, k] expert ids, UNKNOWN (−1) where not known. */
  experts: Int32Array;
  /** [tokens] token ids, −1 where not known. */
  tokenIds?: Int32Array;
  /** [tokens, moeLayers, k] gate weights. */
  weights?: Float32Array;
  /** [tokens, moeLayers, experts] router probabilities or logits (as meta.recorded.router says). */
  router?: Float32Array;
  /** [tokens] display text of each token. */
  tokenTexts?: readonly string[];
  /** [steps, moeLayers, experts] counts (counts-only sources). */
  stepCounts?: Uint32Array;
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The trace as one safetensors file. Throws (naming the array) when an array disagrees with the metadata. */
export function encodeTrace(meta: TraceMeta, a: TraceArrays): Uint8Array {
  const problems = metaProblems(meta);
  if (problems.length > 0) throw new Error(`encodeTrace: ${problems.map(([f, d]) => `${f}: ${d}`).join('; ')}`);
  const T = meta.numTokens, L = meta.moeLayers.length, K = meta.topK, E = meta.numExperts;
  const expect = (what: string, got: number | undefined, want: number) => {
    if (got !== want) throw new Error(`encodeTrace: ${what} has ${got} entries, expected ${want}`);
  };
  expect('experts', a.experts.length, T * L * K);
  const dtype = expertDtypeFor(E);
  const stored = dtype === 'U8' ? new Uint8Array(a.experts.length) : dtype === 'U16' ? new Uint16Array(a.experts.length) : new Int32Array(a.experts.length);
  for (let i = 0; i < a.experts.length; i++) {
    const e = a.experts[i];
    if (e === UNKNOWN) stored[i] = UNKNOWN_STORED[dtype];
    else if (Number.isInteger(e) && e >= 0 && e < E) stored[i] = e;
    else throw new Error(`encodeTrace: experts[${i}] = ${e} is outside [0, ${E}) and not UNKNOWN`);
  }
  const tensors: TensorToWrite[] = [{ name: TENSORS.experts, dtype, shape: [T, L, K], data: bytesOf(stored) }];
  if (meta.recorded.tokenIds !== (a.tokenIds !== undefined)) throw new Error('encodeTrace: recorded.tokenIds disagrees with the arrays given');
  if (a.tokenIds) {
    expect('tokenIds', a.tokenIds.length, T);
    tensors.push({ name: TENSORS.tokenIds, dtype: 'I32', shape: [T], data: bytesOf(a.tokenIds) });
  }
  if (meta.recorded.weights !== (a.weights !== undefined)) throw new Error('encodeTrace: recorded.weights disagrees with the arrays given');
  if (a.weights) {
    expect('weights', a.weights.length, T * L * K);
    tensors.push({ name: TENSORS.weights, dtype: 'F32', shape: [T, L, K], data: bytesOf(a.weights) });
  }
  if ((meta.recorded.router !== null) !== (a.router !== undefined)) throw new Error('encodeTrace: recorded.router disagrees with the arrays given');
  if (a.router) {
    expect('router', a.router.length, T * L * E);
    const name = meta.recorded.router === 'probs' ? TENSORS.probs : TENSORS.logits;
    tensors.push({ name, dtype: 'F32', shape: [T, L, E], data: bytesOf(a.router) });
  }
  if (meta.recorded.tokenTexts !== (a.tokenTexts !== undefined)) throw new Error('encodeTrace: recorded.tokenTexts disagrees with the arrays given');
  if (a.tokenTexts) {
    expect('tokenTexts', a.tokenTexts.length, T);
    const enc = new TextEncoder();
    const parts = a.tokenTexts.map((t) => enc.encode(t));
    const offsets = new Uint32Array(T + 1);
    parts.forEach((p, i) => (offsets[i + 1] = offsets[i] + p.byteLength));
    const text = new Uint8Array(offsets[T]);
    parts.forEach((p, i) => text.set(p, offsets[i]));
    tensors.push({ name: TENSORS.text, dtype: 'U8', shape: [text.byteLength], data: text });
    tensors.push({ name: TENSORS.textOffsets, dtype: 'U32', shape: [T + 1], data: bytesOf(offsets) });
  }
  if ((meta.countSteps > 0) !== (a.stepCounts !== undefined)) throw new Error('encodeTrace: countSteps disagrees with the arrays given');
  if (a.stepCounts) {
    expect('stepCounts', a.stepCounts.length, meta.countSteps * L * E);
    tensors.push({ name: TENSORS.stepCounts, dtype: 'U32', shape: [meta.countSteps, L, E], data: bytesOf(a.stepCounts) });
  }
  return encodeSafetensors(tensors, { [METADATA_KEY]: JSON.stringify(meta) });
}
