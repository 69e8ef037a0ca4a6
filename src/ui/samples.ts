// The demo model's samples file: short texts with a domain label each, for the prompt picker and the load-bar split.
// Accepted shapes: an array of samples, or an object with a `samples` array. A sample has `text` and a label in
// `domain` (or `label` / `category`); optional: `title`, `genre`, and per-word part-of-speech tags as `pos` with
// character `spans` [start0, end0, start1, end1, …] (the demo model's samples.json, schema moescope-samples/1).
import type { LabelledSpan } from './align';

export interface Sample {
  text: string;
  domain: string;
  /** Optional short title for the picker. */
  title?: string;
  /** Finer label (a Brown genre, a programming language), when the file has one. */
  genre?: string;
  /** Part of speech of each word of the text, as character spans (prose samples of the demo model). */
  posSpans?: LabelledSpan[];
}

export class SamplesFileError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'SamplesFileError';
  }
}

export function parseSamples(json: unknown, file: string): Sample[] {
  const list = Array.isArray(json) ? json : (json as { samples?: unknown })?.samples;
  if (!Array.isArray(list)) throw new SamplesFileError(file, 'expected an array of samples or an object with a "samples" array');
  return list.map((item, i) => {
    if (typeof item !== 'object' || item === null) throw new SamplesFileError(file, `samples[${i}] is not an object`);
    const o = item as Record<string, unknown>;
    if (typeof o.text !== 'string' || o.text.length === 0) {
      throw new SamplesFileError(file, `samples[${i}] field "text" must be a non-empty string`);
    }
    const domain = [o.domain, o.label, o.category].find((v) => typeof v === 'string' && v.length > 0);
    if (typeof domain !== 'string') {
      throw new SamplesFileError(file, `samples[${i}] needs a domain label (field "domain", "label" or "category")`);
    }
    const title = [o.title, o.name].find((v) => typeof v === 'string' && v.length > 0);
    const sample: Sample = { text: o.text, domain, ...(typeof title === 'string' ? { title } : {}) };
    if (typeof o.genre === 'string' && o.genre.length > 0) sample.genre = o.genre;
    if (o.pos !== undefined || o.spans !== undefined) sample.posSpans = posSpans(o.pos, o.spans, o.text.length, file, i);
    return sample;
  });
}

function posSpans(pos: unknown, spans: unknown, textLength: number, file: string, i: number): LabelledSpan[] {
  if (!Array.isArray(pos) || !Array.isArray(spans) || spans.length !== 2 * pos.length) {
    throw new SamplesFileError(file, `samples[${i}] fields "pos" and "spans" must be arrays, with two spans entries per tag`);
  }
  return pos.map((label, w) => {
    const start = spans[2 * w];
    const end = spans[2 * w + 1];
    if (typeof label !== 'string' || !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > textLength) {
      throw new SamplesFileError(file, `samples[${i}] word ${w}: bad "pos"/"spans" entry (${JSON.stringify(label)}, ${start}, ${end})`);
    }
    return { start, end, label };
  });
}

/** Picker label of a sample: its title or the start of its text, with its domain. */
export function sampleLabel(s: Sample, i: number): string {
  const head = (s.title ?? s.text).replace(/\s+/g, ' ').trim();
  return `${i + 1}. [${s.domain}] ${head.length > 48 ? head.slice(0, 47) + '…' : head}`;
}

/**
 * The prompt a running model without a samples file opens on (a folder as tools/random_model.py or a Hub download
 * leaves it): shown in the prompt box as a typed prompt, so stepping has tokens to go through. Without it the page
 * opened on an empty text and a step forward did nothing.
 */
export const DEFAULT_PROMPT = 'The router sends each token to a few experts, and only the chosen experts do the work.';
