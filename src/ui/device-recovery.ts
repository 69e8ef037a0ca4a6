// A lost GPU device, recovered in place (no reload): a new device, the 3D view moved onto it, the current model loaded
// again from where it came from (the server for a bundled model; the File objects of the files, folder or GGUF the
// user opened, which the page keeps), and its tokens (text and generated ones) replayed in the same steps under the
// same routing policies, so position, routing record and policy are as they were. The page then says what happened
// and what came back, checked against the last snapshot taken before the loss. A model whose source is gone (a file
// deleted or changed since it was opened) is named as such, and its config stays drawn so the page remains usable.
import { requestBrowserGpu } from '../engine/device';
import type { Gpu, GpuDeviceLostError } from '../engine/gpu';
import type { RoutingSnapshot } from '../engine/session-api';
import type { App, SavedSession } from './app';
import type { ModelLoader } from './compare-mode';
import { progress, showError, showNotice } from './messages';
import { configOnlyModel, type LoadedModel } from './models';

/** A second loss this soon after a recovery is not retried (a device that keeps failing would recover forever). */
const RETRY_AFTER_MS = 30_000;

/** Watch the app's device; on loss, recover on a new one. */
export function recoverOnDeviceLoss(app: App, load: ModelLoader): void {
  let lastRecovery = -Infinity;
  const watch = (gpu: Gpu) =>
    gpu.onLost((lost) => {
      if (gpu !== app.gpu) return;
      if (Date.now() - lastRecovery < RETRY_AFTER_MS) {
        showError(new Error(`${lost.message}. It was lost again within ${RETRY_AFTER_MS / 1000} s of the last recovery: reload the page to try again.`));
        return;
      }
      lastRecovery = Date.now();
      void recover(app, lost, load, watch)
        .catch(showError)
        .finally(() => progress(null, ''));
    });
  watch(app.gpu);
}

async function recover(app: App, lost: GpuDeviceLostError, load: ModelLoader, watch: (gpu: Gpu) => void): Promise<void> {
  const model = app.model;
  const before = app.snapshots.current;
  const saved = await app.save();
  const what = `The GPU device was lost (${lost.reason})`;
  progress(0, 'the GPU device was lost: requesting a new one');
  let gpu: Gpu;
  try {
    gpu = await requestBrowserGpu('moescope');
  } catch (e) {
    showError(new Error(`${what} and no new one could be had: ${(e as Error).message}. Reload the page to try again.`));
    return;
  }
  watch(gpu);
  await app.useGpu(gpu);
  if (!model) {
    showNotice(`${what}. The page created a new one.`);
    return;
  }
  let again: LoadedModel;
  try {
    again = await load(model.id, progress);
  } catch (e) {
    const reason = `It could not be loaded again after the GPU device was lost: ${(e as Error).message}.`;
    await app.setModel(configOnlyModel(model.id, model.name, model.config, reason), undefined, saved);
    showError(
      new Error(
        `${what}. The page created a new one, but ${model.name} could not be loaded again: ${(e as Error).message}. ` +
          `Its config is drawn without running and its ${tokenCount(saved.tokens?.processed.length ?? 0)} are not; open the model again, or pick another.`,
      ),
    );
    return;
  }
  await app.setModel(again, undefined, saved);
  showNotice(`${what}. The page created a new one and uploaded ${again.name} again ${source(model)}${await restored(app, saved, before)}`);
}

function source(model: LoadedModel): string {
  if (model.id.startsWith('demo:')) return 'from the server';
  if (model.id.startsWith('config:')) return '(its config)';
  return 'from the files it was opened from';
}

/** What came back: tokens, steps and policy, and whether the routing record matches the last snapshot before the loss. */
async function restored(app: App, saved: SavedSession, before: RoutingSnapshot | null): Promise<string> {
  const session = app.model?.session;
  const stepper = app.stepper;
  if (!session || !stepper || !saved.tokens) return '.';
  const n = stepper.position;
  if (n === 0) return '; no tokens had been processed.';
  const generated = stepper.processed.filter((t) => t.domain === 'generated').length;
  const steps = saved.session ? ` in the same ${saved.session.steps.length} steps` : '';
  const label = app.state.whatIfLabel(app.model!.config.router.topK);
  const policy = label ? `the same routing policy (${label})` : 'the same routing policy (as trained)';
  const tokens = generated > 0 ? `${tokenCount(n)} (${n - generated} of the text, ${generated} generated)` : tokenCount(n);
  let check = 'no snapshot of that position was taken before the loss to compare with';
  if (before && before.position === n) {
    const now = await stepper.run(() => session.snapshot());
    const same = sameWords(now.counts, before.counts) && sameWords(now.chosen, before.chosen) && sameWords(now.assigned, before.assigned);
    check = same
      ? 'its routing counts and chosen experts match the last snapshot taken before the loss'
      : 'but its routing record differs from the last snapshot taken before the loss';
  }
  return `, replayed its ${tokens}${steps} under ${policy}: back at token ${n}; ${check}.`;
}

const tokenCount = (n: number) => `${n} token${n === 1 ? '' : 's'}`;

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
