// CPU time of recording a decode step: command encoder, Decoder.encodeStep, finish and submit, timed on the host.
// Each step starts after the queue has drained, so the driver's own threads are idle and only the recording is
// measured. Shared by bench-model (which reports it per model) and tests/gpu/decode-recording.test.ts.
import type { Gpu } from '../engine/gpu';
import type { Decoder } from '../engine/model/decoder';

/**
 * Milliseconds of CPU per one-token step, `steps` samples after `warmUp` unrecorded ones, at positions startPos …
 * startPos + span − 1 in turn (the caller's context must hold them; their KV rows are overwritten).
 */
export async function recordingMillis(
  gpu: Gpu, decoder: Decoder, startPos: number, o: { steps: number; warmUp: number; span: number },
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < o.warmUp + o.steps; i++) {
    await gpu.device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    const encoder = gpu.device.createCommandEncoder({ label: 'recordingMillis' });
    decoder.encodeStep(encoder, 1, startPos + (i % o.span));
    gpu.device.queue.submit([encoder.finish()]);
    const ms = performance.now() - t0;
    if (i >= o.warmUp) times.push(ms);
  }
  return times;
}
