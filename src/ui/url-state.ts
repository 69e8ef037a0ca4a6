// The app state carried in the URL's query string, so a view can be shared or reloaded: which model, the params that
// differ from their defaults, the text and how far it was stepped, hidden layers and the selection.
import { DEFAULT_PARAMS, sanitizeParams, type Params } from './params';

export interface UrlState {
  /** Model id: 'demo', a bundled config ('config:<file>'), or null for the default. */
  model: string | null;
  params: Params;
  /** Text being scanned (prompt), or null for the selected sample. */
  text: string | null;
  /** Index of the selected sample text, or null. */
  sample: number | null;
  /** Tokens stepped. */
  position: number;
  hiddenLayers: number[];
  /** Selected token position, or null. */
  token: number | null;
}

/** Longest text kept in a URL (browsers and servers cut long URLs). */
export const MAX_URL_TEXT = 1500;

export function encodeUrlState(s: UrlState): string {
  const q = new URLSearchParams();
  if (s.model) q.set('model', s.model);
  for (const key of Object.keys(DEFAULT_PARAMS) as (keyof Params)[]) {
    if (s.params[key] !== DEFAULT_PARAMS[key]) q.set(key, String(s.params[key]));
  }
  if (s.sample !== null) q.set('sample', String(s.sample));
  if (s.text !== null) q.set('text', s.text.slice(0, MAX_URL_TEXT));
  if (s.position > 0) q.set('pos', String(s.position));
  if (s.hiddenLayers.length) q.set('hide', s.hiddenLayers.join(','));
  if (s.token !== null) q.set('token', String(s.token));
  return q.toString();
}

const nonNegativeInt = (v: string | null): number | null => {
  if (v === null || !/^\d+$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
};

/** Parse a query string; unknown keys are ignored and bad values fall back to defaults. */
export function decodeUrlState(search: string, numLayers = Number.MAX_SAFE_INTEGER): UrlState {
  const q = new URLSearchParams(search);
  const params: Params = { ...DEFAULT_PARAMS };
  for (const key of Object.keys(DEFAULT_PARAMS) as (keyof Params)[]) {
    const raw = q.get(key);
    if (raw === null) continue;
    const def = DEFAULT_PARAMS[key];
    const value = typeof def === 'number' ? Number(raw) : typeof def === 'boolean' ? raw === 'true' : raw;
    (params as unknown as Record<string, unknown>)[key] = value;
  }
  const hidden = (q.get('hide') ?? '')
    .split(',')
    .map((x) => nonNegativeInt(x.trim()))
    .filter((x): x is number => x !== null && x < numLayers);
  return {
    model: q.get('model'),
    params: sanitizeParams(params, numLayers),
    text: q.get('text'),
    sample: nonNegativeInt(q.get('sample')),
    position: nonNegativeInt(q.get('pos')) ?? 0,
    hiddenLayers: [...new Set(hidden)].sort((a, b) => a - b),
    token: nonNegativeInt(q.get('token')),
  };
}
