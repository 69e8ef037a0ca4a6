// After a lost device: the same model loaded again on a new device and brought back to the same token position with
// the same routing record, by replaying the lost session's steps (its CPU-side state survives the device).
import type { Gpu } from '../engine/gpu';
import type { Session } from '../engine/model/session';
import type { ModelFolder } from '../io/source';
import { loadModel, type LoadOptions } from './load-model';

/**
 * Loads `folder` on `gpu` with `lost`'s context length and step size, then replays `lost`'s tokens, steps and
 * routing policy. `lost` is left as it was (destroying it frees nothing on a lost device, but is harmless).
 */
export async function restoreSession(lost: Session, gpu: Gpu, folder: ModelFolder, options: LoadOptions = {}): Promise<Session> {
  const state = lost.state;
  const session = await loadModel(gpu, folder, {
    ...options,
    contextLength: lost.contextLength,
    maxTokensPerStep: lost.decoder.options.maxTokensPerStep,
  });
  try {
    await session.replay(state);
  } catch (e) {
    session.destroy();
    throw e;
  }
  return session;
}
