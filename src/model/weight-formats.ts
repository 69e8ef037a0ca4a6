// What quantisation changes, per tensor group: the format each group of weights is stored in, its parameter count and
// its bytes (shown by the dashboard's model info and the CLI). Computed from the load plan's entries.
import { QUANT_BLOCKS, bytesPerElement, isQuantFormat, type TensorFormat } from './dtypes';

export interface FormatGroupRow {
  /** 'embedding', 'attention', 'norms', 'router', 'routed experts', 'shared experts', 'dense FFN', 'LM head'. */
  group: string;
  format: TensorFormat;
  tensors: number;
  params: number;
  /** Bytes as stored (blocks with their scales for quantised formats). */
  bytes: number;
}

const GROUP_OF: Readonly<Record<string, string>> = {
  embed: 'embedding', lmHead: 'LM head',
  q: 'attention', k: 'attention', v: 'attention', o: 'attention', qBias: 'attention', kBias: 'attention', vBias: 'attention',
  qNorm: 'norms', kNorm: 'norms', inputNorm: 'norms', postAttnNorm: 'norms', finalNorm: 'norms',
  router: 'router', routerCorrectionBias: 'router',
  expertsGateUp: 'routed experts', expertsDown: 'routed experts',
  sharedGateUp: 'shared experts', sharedDown: 'shared experts', sharedGate: 'shared experts',
  denseGateUp: 'dense FFN', denseDown: 'dense FFN',
};

/** One row per (group, format), in plan order of first appearance. Roles outside the table count as 'other'. */
export function summarizeFormats(entries: readonly { role: string; dtype: TensorFormat; shape: readonly number[]; byteLength: number }[]): FormatGroupRow[] {
  const rows = new Map<string, FormatGroupRow>();
  for (const e of entries) {
    const group = Object.hasOwn(GROUP_OF, e.role) ? GROUP_OF[e.role] : 'other';
    const key = `${group}\u0000${e.dtype}`;
    const row = rows.get(key) ?? { group, format: e.dtype, tensors: 0, params: 0, bytes: 0 };
    row.tensors++;
    row.params += e.shape.reduce((a, b) => a * b, 1);
    row.bytes += e.byteLength;
    rows.set(key, row);
  }
  return [...rows.values()];
}

/** Bits per weight of a format: 4.5 for Q4_K, 8.5 for Q8_0, 16 for BF16. */
export function bitsPerWeight(f: TensorFormat): number {
  return isQuantFormat(f) ? (8 * QUANT_BLOCKS[f].bytes) / QUANT_BLOCKS[f].elements : 8 * bytesPerElement(f);
}
