// Reading a trace lazily: open() reads and checks the safetensors header and the metadata (config against the
// recorded layers, every tensor's dtype and shape); token ranges are read on demand through the ByteSource, so a
// trace of millions of tokens opens without its records in memory. Expert ids are range-checked as they are read.
import { ModelFileError, field, tensorField } from '../io/errors';
import { readSafetensorsHeader, type SafetensorsHeader, type TensorInfo } from '../io/safetensors';
import type { ByteSource } from '../io/source';
import { normalizeConfig } from '../io/config';
import type { MoeConfig } from '../model/config';
import { METADATA_KEY, TENSORS, UNKNOWN, UNKNOWN_STORED, expertDtypeFor, metaProblems, type ExpertDtype, type TraceMeta } from './format';

export class TraceFile {
  private constructor(
    private readonly source: ByteSource,
    readonly header: SafetensorsHeader,
    readonly meta: TraceMeta,
    /** The model description the trace's config.json normalises to. */
    readonly config: MoeConfig,
  ) {}

  get name(): string {
    return this.source.name;
  }

  /** Reads and checks the header; throws a ModelFileError naming the file and the field or tensor at fault. */
  static async open(source: ByteSource): Promise<TraceFile> {
    const file = source.name;
    const header = await readSafetensorsHeader(source);
    const raw = header.metadata[METADATA_KEY];
    if (raw === undefined) throw new ModelFileError(file, field(`__metadata__.${METADATA_KEY}`), 'missing: not a moescope trace');
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (e) {
      throw new ModelFileError(file, field(`__metadata__.${METADATA_KEY}`), `invalid JSON (${(e as Error).message})`);
    }
    const problems = metaProblems(json);
    if (problems.length > 0) throw new ModelFileError(file, field(problems[0][0]), problems[0][1]);
    const meta = json as TraceMeta;
    const config = normalizeConfig(meta.config, `${file} (config)`);
    checkAgainstConfig(file, meta, config);
    const trace = new TraceFile(source, header, meta, config);
    trace.checkTensors();
    return trace;
  }

  private tensor(name: string): TensorInfo | undefined {
    return this.header.tensors.get(name);
  }

  private checkTensors(): void {
    const m = this.meta, file = this.name;
    const T = m.numTokens, L = m.moeLayers.length, K = m.topK, E = m.numExperts;
    const want = (name: string, dtype: string, shape: number[], required: boolean) => {
      const t = this.tensor(name);
      if (!t) {
        if (required) throw new ModelFileError(file, tensorField(name), 'missing (the metadata says it was recorded)');
        return;
      }
      if (t.dtype !== dtype) throw new ModelFileError(file, tensorField(name), `dtype ${t.dtype}, expected ${dtype}`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new ModelFileError(file, tensorField(name), `shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from the metadata`);
      }
    };
    want(TENSORS.experts, expertDtypeFor(E), [T, L, K], true);
    if (m.recorded.tokenIds) want(TENSORS.tokenIds, 'I32', [T], true);
    if (m.recorded.weights) want(TENSORS.weights, 'F32', [T, L, K], true);
    if (m.recorded.router) want(m.recorded.router === 'probs' ? TENSORS.probs : TENSORS.logits, 'F32', [T, L, E], true);
    if (m.recorded.tokenTexts) {
      want(TENSORS.textOffsets, 'U32', [T + 1], true);
      const text = this.tensor(TENSORS.text);
      if (!text || text.dtype !== 'U8' || text.shape.length !== 1) throw new ModelFileError(file, tensorField(TENSORS.text), 'missing or not a U8 vector');
    }
    if (m.countSteps > 0) want(TENSORS.stepCounts, 'U32', [m.countSteps, L, E], true);
  }

  /** Bytes of rows [start, start + count) of a tensor whose first axis is tokens, `rowBytes` each. */
  private async rows(name: string, start: number, count: number, rowBytes: number): Promise<ArrayBuffer> {
    const t = this.tensor(name)!;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > (t.shape[0] ?? 0)) {
      throw new RangeError(`${this.name}: tensor "${name}": rows [${start}, ${start + count}) outside [0, ${t.shape[0]})`);
    }
    const bytes = await this.source.read(t.begin + start * rowBytes, count * rowBytes);
    // A fresh, aligned copy: typed views need their element alignment.
    return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : bytes.slice().buffer;
  }

  private get slotsPerToken(): number {
    return this.meta.moeLayers.length * this.meta.topK;
  }

  /** Expert ids of tokens [start, start + count): Int32Array [count, moeLayers, k], UNKNOWN (−1) where not known. */
  async experts(start: number, count: number): Promise<Int32Array> {
    const { ids, unknown } = await this.storedExperts(start, count);
    const out = new Int32Array(ids.length);
    const E = this.meta.numExperts;
    for (let i = 0; i < ids.length; i++) {
      const e = ids[i];
      if (e === unknown) out[i] = UNKNOWN;
      else if (e >= 0 && e < E) out[i] = e;
      else throw this.badExpert(start, i, e);
    }
    return out;
  }

  /**
   * The ids as stored (u8, u16 or i32) and the value that means unknown: for passes over every token that check
   * each id as they use it (see badExpert), without a decoded copy.
   */
  async storedExperts(start: number, count: number): Promise<{ ids: Uint8Array | Uint16Array | Int32Array; unknown: number }> {
    const dtype: ExpertDtype = expertDtypeFor(this.meta.numExperts);
    const size = dtype === 'U8' ? 1 : dtype === 'U16' ? 2 : 4;
    const buf = await this.rows(TENSORS.experts, start, count, this.slotsPerToken * size);
    const ids = dtype === 'U8' ? new Uint8Array(buf) : dtype === 'U16' ? new Uint16Array(buf) : new Int32Array(buf);
    return { ids, unknown: UNKNOWN_STORED[dtype] };
  }

  /** The error for stored id `e` at slot `i` of the rows read from token `start`. */
  badExpert(start: number, i: number, e: number): ModelFileError {
    const slot = this.slotsPerToken;
    const l = Math.floor((i % slot) / this.meta.topK);
    return new ModelFileError(
      this.name, tensorField(TENSORS.experts),
      `token ${start + Math.floor(i / slot)}, MoE layer ${this.meta.moeLayers[l]}: expert id ${e} is not below numExperts ${this.meta.numExperts}`,
    );
  }

  /** Gate weights [count, moeLayers, k], or null when the source did not record them. */
  async weights(start: number, count: number): Promise<Float32Array | null> {
    if (!this.meta.recorded.weights) return null;
    return new Float32Array(await this.rows(TENSORS.weights, start, count, this.slotsPerToken * 4));
  }

  /** Router probabilities or logits [count, moeLayers, experts] (see meta.recorded.router), or null. */
  async router(start: number, count: number): Promise<Float32Array | null> {
    const kind = this.meta.recorded.router;
    if (!kind) return null;
    const row = this.meta.moeLayers.length * this.meta.numExperts * 4;
    return new Float32Array(await this.rows(kind === 'probs' ? TENSORS.probs : TENSORS.logits, start, count, row));
  }

  /** Token ids (−1 = not recorded); all −1 when the source recorded none. */
  async tokenIds(start: number, count: number): Promise<Int32Array> {
    if (!this.meta.recorded.tokenIds) return new Int32Array(count).fill(-1);
    return new Int32Array(await this.rows(TENSORS.tokenIds, start, count, 4));
  }

  /** Display texts of tokens [start, start + count), or null when the trace has none. */
  async tokenTexts(start: number, count: number): Promise<string[] | null> {
    if (!this.meta.recorded.tokenTexts) return null;
    const offsets = new Uint32Array(await this.rows(TENSORS.textOffsets, start, count + 1, 4));
    const text = this.tensor(TENSORS.text)!;
    const first = offsets[0], last = offsets[count];
    if (last < first || text.begin + last > text.end) {
      throw new ModelFileError(this.name, tensorField(TENSORS.textOffsets), `offsets [${first}, ${last}] outside the ${text.end - text.begin}-byte text`);
    }
    const bytes = await this.source.read(text.begin + first, last - first);
    const dec = new TextDecoder();
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      if (offsets[i + 1] < offsets[i]) throw new ModelFileError(this.name, tensorField(TENSORS.textOffsets), `decrease at token ${start + i}`);
      out.push(dec.decode(bytes.subarray(offsets[i] - first, offsets[i + 1] - first)));
    }
    return out;
  }

  /** Counts-only traces: [steps, moeLayers, experts], or null. */
  async stepCounts(): Promise<Uint32Array | null> {
    if (this.meta.countSteps === 0) return null;
    const t = this.tensor(TENSORS.stepCounts)!;
    return new Uint32Array(await this.rows(TENSORS.stepCounts, 0, t.shape[0], t.shape[1] * t.shape[2] * 4));
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

/** The trace's layers, experts and k must be the config's. */
function checkAgainstConfig(file: string, meta: TraceMeta, config: MoeConfig): void {
  const moe = config.moeLayers.flatMap((isMoe, l) => (isMoe ? [l] : []));
  if (meta.moeLayers.length !== moe.length || meta.moeLayers.some((l, i) => l !== moe[i])) {
    throw new ModelFileError(
      file, field('moeLayers'),
      `records MoE layers [${meta.moeLayers.join(', ')}] but its config has ${config.numLayers} layers with MoE at [${moe.join(', ')}]`,
    );
  }
  if (meta.numExperts !== config.numExperts) {
    throw new ModelFileError(file, field('numExperts'), `${meta.numExperts}, but the config has ${config.numExperts} experts`);
  }
  if (meta.topK !== config.router.topK) {
    throw new ModelFileError(file, field('topK'), `${meta.topK}, but the config routes each token to ${config.router.topK} experts`);
  }
}
