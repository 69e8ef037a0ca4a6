// A lost GPU device in the page. The URL already holds what the user was looking at (model, text, position, routing
// settings, view); the page reloads on it, which requests a new device, uploads the model again and replays the text
// to the same position. After the reload the page says what happened and what came back.
import type { Gpu } from '../engine/gpu';
import type { Dashboard } from './context';
import { showError, showNotice } from './messages';

const KEY = 'moescope.deviceLost';
/** A second loss this soon after a recovery is not retried (a device that keeps failing would reload forever). */
const RETRY_AFTER_MS = 30_000;

interface LostRecord {
  reason: string;
  message: string;
  model: string;
  position: number;
  mode: 'scan' | 'generate';
  at: number;
}

/** On device loss: write the URL, remember what was on screen, reload. */
export function recoverOnDeviceLoss(gpu: Gpu, d: Dashboard, writeUrl: () => void): void {
  gpu.onLost((e) => {
    const last = Number(sessionStorage.getItem(`${KEY}.at`) ?? 0);
    if (Date.now() - last < RETRY_AFTER_MS) {
      showError(new Error(`${e.message}. It was lost again within ${RETRY_AFTER_MS / 1000} s of the last recovery: reload the page to try again.`));
      return;
    }
    writeUrl();
    const record: LostRecord = {
      reason: e.reason,
      message: e.message,
      model: d.model?.name ?? 'no model',
      position: d.stepper?.position ?? 0,
      mode: d.stepper?.mode ?? 'scan',
      at: Date.now(),
    };
    sessionStorage.setItem(KEY, JSON.stringify(record));
    sessionStorage.setItem(`${KEY}.at`, String(record.at));
    location.reload();
  });
}

/** After the reload that recovered from a lost device (call once the model is back): what happened, what was restored. */
export function reportRecovery(d: Dashboard): void {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return;
  sessionStorage.removeItem(KEY);
  const lost = JSON.parse(raw) as LostRecord;
  const now = d.stepper?.position ?? 0;
  const where = now === lost.position
    ? `returned to token ${now}`
    : `is at token ${now}, not ${lost.position} as before`;
  const generated = lost.mode === 'generate' ? ' Generated tokens are not in the link, so only the text before them came back.' : '';
  showNotice(
    `The GPU device was lost (${lost.reason}). The page requested a new one, uploaded ${d.model?.name ?? lost.model} again ` +
      `and ${where}, with the same text, routing settings and view.${generated}`,
  );
}
