// vLLM routed experts (vLLM ≥ 0.21, `enable_return_routed_experts=True` / `--enable-return-routed-experts`):
// int16 [tokens, moe_layers, k] per request, −1 at prefix-cached positions (their routing was never computed).
//   - offline `LLM.generate`: RequestOutput.prompt_routed_experts and CompletionOutput.routed_experts are numpy
//     arrays; saved with np.save they come here as one .npy file (one sequence, token ids unknown);
//   - OpenAI endpoints (/v1/completions, /v1/chat/completions): the response's `prompt_routed_experts` and each
//     choice's `routed_experts` as nested JSON lists, with `prompt_token_ids` / `choices[i].token_ids` when the
//     request set `return_token_ids`;
//   - the generate endpoint (≥ 0.22): `routed_experts` as a base64 string of np.save bytes, covering the prompt and
//     the generated tokens but the last (which is returned, never forwarded).
// Responses may be one JSON document, a list of them, or JSON Lines. With n > 1 choices the prompt is kept once
// (with the first choice); every further choice is a sequence of its generated tokens only.
import { ModelFileError, field } from '../io/errors';
import { buildTrace, checkTopK, type ParsedSequence } from './builder';
import { asRecord, configOf, intList, listOrNpyRows, npyRows, parseJsonOrLines, type ImportOptions, type Rows } from './import-common';
import { isNpy } from './npy';
import { UNKNOWN } from './format';

export function importVllm(bytes: Uint8Array, o: ImportOptions) {
  const config = configOf(o);
  const file = o.file;
  const sequences: ParsedSequence[] = [];
  let layers = -1;
  const useRows = (r: Rows, where: string): Rows => {
    checkTopK(config, r.k, file, where);
    if (layers >= 0 && r.layers !== layers) throw new ModelFileError(file, field(where), `has ${r.layers} layers per token; earlier rows had ${layers}`);
    layers = r.layers;
    return r;
  };
  const K = config.router.topK;
  if (isNpy(bytes)) {
    const r = useRows(npyRows(bytes, file, 'npy'), 'npy');
    sequences.push({ id: '0', tokenIds: null, length: r.count, promptLength: r.count, rows: r.data, rowCount: r.count, where: 'npy' });
  } else {
    parseJsonOrLines(bytes, file).forEach((doc, i) => {
      const at = (f: string) => (i === 0 && !Array.isArray(doc) ? f : `[${i}].${f}`);
      const r = asRecord(doc, file, `[${i}]`);
      const id = typeof r.id === 'string' ? r.id : String(i);
      const promptIds = r.prompt_token_ids != null ? intList(r.prompt_token_ids, file, at('prompt_token_ids')) : null;
      const promptRows = r.prompt_routed_experts != null ? useRows(listOrNpyRows(r.prompt_routed_experts, file, at('prompt_routed_experts')), at('prompt_routed_experts')) : null;
      const P = promptIds?.length ?? promptRows?.count ?? 0;
      if (promptIds && promptRows && promptRows.count !== P) {
        throw new ModelFileError(file, field(at('prompt_routed_experts')), `${promptRows.count} rows for ${P} prompt_token_ids`);
      }
      const choices = Array.isArray(r.choices) ? r.choices : [];
      if (choices.length === 0) choices.push({});
      choices.forEach((c: unknown, j: number) => {
        const ch = asRecord(c, file, at(`choices[${j}]`));
        const where = at(`choices[${j}].routed_experts`);
        const genIds = ch.token_ids != null ? intList(ch.token_ids, file, at(`choices[${j}].token_ids`)) : null;
        const routed = ch.routed_experts != null ? useRows(listOrNpyRows(ch.routed_experts, file, where), where) : null;
        const withPrompt = j === 0;
        // Generate-endpoint arrays start at the first prompt token: recognisable as rows beyond the generated tokens.
        const combined = !promptRows && routed !== null && genIds !== null && routed.count > genIds.length;
        const G = genIds?.length ?? routed?.count ?? 0;
        const length = (withPrompt ? P : 0) + G;
        const rows = new Int32Array(length * Math.max(layers, 0) * K).fill(UNKNOWN);
        const slot = Math.max(layers, 0) * K;
        if (withPrompt && promptRows) rows.set(promptRows.data.subarray(0, Math.min(promptRows.count, length) * slot));
        if (routed) {
          const from = combined ? (withPrompt ? 0 : P) : 0;
          const to = withPrompt && !combined ? P : 0;
          const n = Math.min(routed.count - from, length - to);
          if (routed.count - from > length - to) {
            throw new ModelFileError(file, field(where), `${routed.count} rows for ${combined ? `${P} prompt + ` : ''}${G} generated tokens`);
          }
          rows.set(routed.data.subarray(from * slot, (from + n) * slot), to * slot);
        }
        const tokenIds = promptIds || genIds ? [...(withPrompt ? promptIds ?? new Array(P).fill(-1) : []), ...(genIds ?? new Array(G).fill(-1))] : null;
        sequences.push({ id: choices.length > 1 ? `${id}#${j}` : id, tokenIds, length, promptLength: withPrompt ? P : 0, rows, rowCount: slot > 0 ? length : 0, where });
      });
    });
  }
  if (layers < 0) throw new ModelFileError(file, null, 'holds no routed experts (was the server started with --enable-return-routed-experts?)');
  return buildTrace(
    {
      file, config: o.config, configName: o.configName, tokenizer: o.tokenizer?.name ?? null, tokenText: o.tokenizer?.text ?? null, sequences,
      source: { engine: 'vllm', version: null, dtype: null, parallelism: null, note: `imported from ${file}`, ...o.source },
    },
    layers,
  );
}
