// Pieces every importer shares: reading JSON / JSON Lines responses, base64, nested [tokens][layers][k] lists.
import { ModelFileError, field } from '../io/errors';
import { normalizeConfig } from '../io/config';
import type { MoeConfig } from '../model/config';
import { isNpy, parseNpy } from './npy';
import type { TraceSource } from './format';

export interface ImportOptions {
  /** Input file name (errors name it). */
  file: string;
  /** The model's config.json, parsed, and its name. */
  config: Record<string, unknown>;
  configName: string;
  /** Token texts from a tokenizer, if one was given. */
  tokenizer?: { name: string; text: (id: number) => string } | null;
  /** Source facts the input does not carry (engine version, dtype, parallelism). */
  source?: Partial<TraceSource>;
}

export const configOf = (o: ImportOptions): MoeConfig => normalizeConfig(o.config, o.configName);

/** One JSON document, or JSON Lines (one document per non-empty line). */
export function parseJsonOrLines(bytes: Uint8Array, file: string): unknown[] {
  const text = new TextDecoder().decode(bytes);
  try {
    const doc = JSON.parse(text);
    return Array.isArray(doc) ? doc : [doc];
  } catch {
    return text.split('\n').flatMap((line, i) => {
      if (line.trim() === '') return [];
      try {
        return [JSON.parse(line)];
      } catch (e) {
        throw new ModelFileError(file, `line ${i + 1}`, `neither one JSON document nor JSON Lines (${(e as Error).message})`);
      }
    });
  }
}

export function base64Bytes(s: string, file: string, where: string): Uint8Array {
  try {
    const bin = atob(s.replace(/\s+/g, ''));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    throw new ModelFileError(file, field(where), 'is not valid base64');
  }
}

export interface Rows {
  /** [count, layers, k] expert ids. */
  data: Int32Array;
  count: number;
  layers: number;
  k: number;
}

/** A nested [tokens][layers][k] list of integers (rectangular). */
export function nestedRows(v: unknown, file: string, where: string): Rows {
  const fail = (detail: string): never => {
    throw new ModelFileError(file, field(where), detail);
  };
  if (!Array.isArray(v)) fail('must be a [tokens][layers][k] list');
  const rows = v as unknown[];
  const layers = rows.length > 0 && Array.isArray(rows[0]) ? (rows[0] as unknown[]).length : 0;
  const k = layers > 0 && Array.isArray((rows[0] as unknown[])[0]) ? ((rows[0] as unknown[][])[0]).length : 0;
  const data = new Int32Array(rows.length * layers * k);
  rows.forEach((r, t) => {
    if (!Array.isArray(r) || r.length !== layers) fail(`token ${t}: expected ${layers} layers`);
    (r as unknown[]).forEach((ks, l) => {
      if (!Array.isArray(ks) || ks.length !== k) fail(`token ${t}, layer ${l}: expected ${k} expert ids`);
      (ks as unknown[]).forEach((e, j) => {
        if (!Number.isInteger(e)) fail(`token ${t}, layer ${l}: ${JSON.stringify(e)} is not an integer`);
        data[(t * layers + l) * k + j] = e as number;
      });
    });
  });
  return { data, count: rows.length, layers, k };
}

/** A 3-D .npy array [tokens, layers, k]. */
export function npyRows(bytes: Uint8Array, file: string, where: string): Rows {
  const a = parseNpy(bytes, file, where);
  if (a.shape.length !== 3) throw new ModelFileError(file, field(where), `shape (${a.shape.join(', ')}) is not [tokens, layers, k]`);
  return { data: a.data, count: a.shape[0], layers: a.shape[1], k: a.shape[2] };
}

/** Routing given as a nested list, or as a base64 string of np.save bytes. */
export function listOrNpyRows(v: unknown, file: string, where: string): Rows {
  if (typeof v === 'string') {
    const bytes = base64Bytes(v, file, where);
    if (!isNpy(bytes)) throw new ModelFileError(file, field(where), 'is a string but not base64 of an np.save array');
    return npyRows(bytes, file, where);
  }
  return nestedRows(v, file, where);
}

export const intList = (v: unknown, file: string, where: string): number[] => {
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) throw new ModelFileError(file, field(where), 'must be a list of integers');
  return v as number[];
};

export const asRecord = (v: unknown, file: string, where: string): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ModelFileError(file, field(where), 'must be a JSON object');
  return v as Record<string, unknown>;
};
