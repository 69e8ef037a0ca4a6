// Corpus figures' numbers: texts labelled by domain run through the model, their routing accumulated per domain,
// layer and expert; from that the load by domain, the specialisation of each layer (mutual information between a
// token's domain and the expert it is sent to, each of its k choices counted once, in bits — as
// tools/analyze_demo_model.py measures it) and each expert's domain mix; and the change between two checkpoints.
import { K_MAX, NO_EXPERT } from '../model/limits';
import type { RoutingRecord } from './pathways';

/** A labelled text: what the corpus commands read (the demo model's samples.json has these two fields and more). */
export interface CorpusText {
  text: string;
  domain: string;
}

export class CorpusFileError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'CorpusFileError';
  }
}

/** Texts of a samples file: an array of {text, domain}, or an object with such a `samples` array. */
export function corpusFromJson(json: unknown, file: string): CorpusText[] {
  const list = Array.isArray(json) ? json : (json as { samples?: unknown } | null)?.samples;
  if (!Array.isArray(list)) throw new CorpusFileError(file, 'expected an array of samples or an object with a "samples" array');
  return list.map((item: unknown, i) => {
    const o = (item ?? {}) as Record<string, unknown>;
    if (typeof o.text !== 'string' || o.text.length === 0) throw new CorpusFileError(file, `samples[${i}] field "text" must be a non-empty string`);
    if (typeof o.domain !== 'string' || o.domain.length === 0) throw new CorpusFileError(file, `samples[${i}] field "domain" must be a non-empty string`);
    return { text: o.text, domain: o.domain };
  });
}

export interface CorpusStats {
  domains: string[];
  numLayers: number;
  numExperts: number;
  /** Tokens per domain. */
  tokens: number[];
  /** Per domain, u32 [layers, experts]: assignments (each of a token's k choices once). */
  counts: Uint32Array[];
}

/** Accumulates routing records of labelled texts. */
export class CorpusAccumulator {
  private readonly byDomain = new Map<string, { tokens: number; counts: Uint32Array }>();

  constructor(
    readonly numLayers: number,
    readonly numExperts: number,
  ) {}

  add(domain: string, r: RoutingRecord): void {
    if (r.numLayers !== this.numLayers || r.numExperts !== this.numExperts) {
      throw new RangeError(`corpus: a record of ${r.numLayers} × ${r.numExperts} in a corpus of ${this.numLayers} × ${this.numExperts}`);
    }
    let d = this.byDomain.get(domain);
    if (!d) this.byDomain.set(domain, (d = { tokens: 0, counts: new Uint32Array(this.numLayers * this.numExperts) }));
    d.tokens += r.tokens;
    for (let t = 0; t < r.tokens; t++) {
      for (let l = 0; l < r.numLayers; l++) {
        for (let s = 0; s < K_MAX; s++) {
          const e = r.chosen[(t * r.numLayers + l) * K_MAX + s];
          if (e === NO_EXPERT) break;
          d.counts[l * this.numExperts + e]++;
        }
      }
    }
  }

  stats(): CorpusStats {
    const domains = [...this.byDomain.keys()].sort();
    return {
      domains,
      numLayers: this.numLayers,
      numExperts: this.numExperts,
      tokens: domains.map((d) => this.byDomain.get(d)!.tokens),
      counts: domains.map((d) => this.byDomain.get(d)!.counts),
    };
  }
}

export interface LayerSpecialisation {
  layer: number;
  /** I(domain; expert), bits. */
  mutualInformation: number;
  /** Per domain, [experts]: the domain's share of its own assignments that each expert takes (sums to 1). */
  loadByDomain: number[][];
  /** Per expert, [domains]: the share of the expert's assignments coming from each domain (sums to 1; 0s if unused). */
  domainMix: number[][];
}

export function specialisation(s: CorpusStats): LayerSpecialisation[] {
  const E = s.numExperts;
  const D = s.domains.length;
  return Array.from({ length: s.numLayers }, (_, l) => {
    const n = (d: number, e: number) => s.counts[d][l * E + e];
    const rows = Array.from({ length: D }, (_, d) => Array.from({ length: E }, (_, e) => n(d, e)));
    const rowSum = rows.map((r) => r.reduce((a, b) => a + b, 0));
    const colSum = Array.from({ length: E }, (_, e) => rows.reduce((a, r) => a + r[e], 0));
    const total = rowSum.reduce((a, b) => a + b, 0);
    let mi = 0;
    for (let d = 0; d < D; d++) {
      for (let e = 0; e < E; e++) {
        const c = rows[d][e];
        if (c > 0) mi += (c / total) * Math.log2((c * total) / (rowSum[d] * colSum[e]));
      }
    }
    return {
      layer: l,
      mutualInformation: total > 0 ? mi : 0,
      loadByDomain: rows.map((r, d) => r.map((c) => (rowSum[d] > 0 ? c / rowSum[d] : 0))),
      domainMix: Array.from({ length: E }, (_, e) => rows.map((r) => (colSum[e] > 0 ? r[e] / colSum[e] : 0))),
    };
  });
}
