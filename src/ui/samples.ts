// The demo model's samples file: short texts with a domain label each, for the prompt picker and the load-bar split.
// Accepted shapes: an array of samples, or an object with a `samples` array. A sample has `text` and a label in
// `domain` (or `label` / `category`); other fields (titles, part-of-speech tags) are kept when they are strings.

export interface Sample {
  text: string;
  domain: string;
  /** Optional short title for the picker. */
  title?: string;
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
    const title = [o.title, o.name, o.genre].find((v) => typeof v === 'string' && v.length > 0);
    return { text: o.text, domain, ...(typeof title === 'string' ? { title } : {}) };
  });
}

/** Picker label of a sample: its title or the start of its text, with its domain. */
export function sampleLabel(s: Sample, i: number): string {
  const head = (s.title ?? s.text).replace(/\s+/g, ' ').trim();
  return `${i + 1}. [${s.domain}] ${head.length > 48 ? head.slice(0, 47) + '…' : head}`;
}
