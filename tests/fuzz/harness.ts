// The shared fuzz property for every parser of outside input: for each generated or mutated input, the parser either
// accepts it or rejects it with a ModelFileError that names one of the files it was given and a field of it. Anything
// else (another exception type, an error without a field, a hang) fails the run with fast-check's seed and path, so
// the failing input can be replayed.
//
// Adding a parser: write an fc.Arbitrary of its inputs (mutations of a valid file find more than random bytes) and
// call `fuzzParser` with the file names a rejection may name and the parse function; see docs/reliability.md.
import fc from 'fast-check';
import { ModelFileError } from '../../src/io/errors';

/** Inputs per parser in CI; FUZZ_RUNS raises it for a longer local run. */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);

export interface FuzzTarget<T> {
  /** What is parsed, for messages. */
  name: string;
  input: fc.Arbitrary<T>;
  /** File names a rejection may name (per input when the names are generated too). */
  files: readonly string[] | ((input: T) => readonly string[]);
  parse(input: T): unknown;
  /** Fixed seed so CI runs are reproducible; FUZZ_SEED overrides it for exploration. */
  seed: number;
  runs?: number;
}

export interface FuzzOutcome {
  runs: number;
  accepted: number;
  rejected: number;
  /** Rejections by the field they named (`field "hidden_size"`, `tensor "…"` collapsed to `tensor`), for the docs. */
  fields: Map<string, number>;
}

/** A rejection is good when it is a ModelFileError naming one of `files` and a field of it. */
export function checkRejection(error: unknown, files: readonly string[]): string {
  if (!(error instanceof ModelFileError)) {
    throw new Error(`not a ModelFileError: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`, { cause: error });
  }
  if (!files.includes(error.file)) throw new Error(`names file "${error.file}", expected one of ${files.join(', ')}: ${error.message}`);
  if (!error.field) throw new Error(`names no field: ${error.message}`);
  // Collapse generated names: `tensor "t0"` → tensor, `field "__metadata__.x"` → field "__metadata__".
  return error.field.startsWith('tensor "') ? 'tensor' : error.field.replace(/^field "([^".[]*)[.[].*"$/s, 'field "$1"');
}

/** Runs the accept-or-typed-rejection property over `target.runs ?? FUZZ_RUNS` inputs. */
export async function fuzzParser<T>(target: FuzzTarget<T>): Promise<FuzzOutcome> {
  const outcome: FuzzOutcome = { runs: 0, accepted: 0, rejected: 0, fields: new Map() };
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : target.seed;
  const property = fc.asyncProperty(target.input, async (input) => {
    outcome.runs++;
    const files = typeof target.files === 'function' ? target.files(input) : target.files;
    try {
      await target.parse(input);
      outcome.accepted++;
    } catch (error) {
      const key = checkRejection(error, files);
      outcome.rejected++;
      outcome.fields.set(key, (outcome.fields.get(key) ?? 0) + 1);
    }
  });
  // A parse that never settles fails the run instead of hanging the suite.
  const details = await fc.check(property, { numRuns: target.runs ?? FUZZ_RUNS, seed, timeout: 2_000, endOnFailure: true });
  if (details.failed) {
    // The counterexample of a binary input can be megabytes: report its seed and path (to replay it) and the cause.
    const input = fc.stringify(details.counterexample);
    throw new Error(
      `${target.name}: failed after ${details.numRuns} inputs (seed ${details.seed}, path "${details.counterexamplePath}"): ` +
        `${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}\n` +
        `input: ${input.length > 600 ? `${input.slice(0, 600)}… (${input.length} chars)` : input}`,
      { cause: details.errorInstance },
    );
  }
  // FUZZ_REPORT=1: one line per parser for docs/reliability.md.
  if (process.env.FUZZ_REPORT) {
    const fields = [...outcome.fields].sort((a, b) => b[1] - a[1]).map(([f, n]) => `${f} ${n}`).join(', ');
    console.log(`| ${target.name} | ${seed} | ${outcome.runs} | ${outcome.accepted} | ${outcome.rejected} | ${fields} |`);
  }
  return outcome;
}

/** Values JSON can hold, biased toward the ones parsers trip on (huge, negative, fractional, empty, wrong type). */
export const nastyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1, 0.5, -0.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, '', '0', '1', 'NaN', [], {}),
  fc.integer({ min: -10, max: 300 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 8 }),
  fc.array(fc.integer({ min: -2, max: 9 }), { maxLength: 4 }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Byte-level damage to a valid file: truncation, flipped bytes, inserted or appended junk. */
export const byteMutation = (bytes: Uint8Array): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.nat({ max: bytes.length }).map((n) => bytes.slice(0, n)),
    fc.array(fc.tuple(fc.nat({ max: Math.max(0, bytes.length - 1) }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 })
      .map((flips) => {
        const out = bytes.slice();
        for (const [at, v] of flips) if (at < out.length) out[at] = v;
        return out;
      }),
    fc.tuple(fc.nat({ max: bytes.length }), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, junk]) => {
      const out = new Uint8Array(bytes.length + junk.length);
      out.set(bytes.subarray(0, at));
      out.set(junk, at);
      out.set(bytes.subarray(at), at + junk.length);
      return out;
    }),
  );

/** Replaces, deletes or adds one key of a JSON object (a shallow structural mutation). */
export const objectMutation = (obj: Record<string, unknown>, extraKeys: readonly string[] = []): fc.Arbitrary<Record<string, unknown>> => {
  const keys = [...Object.keys(obj), ...extraKeys];
  return fc.array(
    fc.tuple(fc.constantFrom(...keys), fc.oneof(fc.constant<'delete'>('delete'), nastyJson.map((v) => ({ v })))),
    { minLength: 1, maxLength: 3 },
  ).map((edits) => {
    const out: Record<string, unknown> = { ...obj };
    for (const [key, edit] of edits) {
      if (edit === 'delete') delete out[key];
      else out[key] = edit.v;
    }
    return out;
  });
};
