// The person's GPU-memory budget for the models the dashboard runs ("GPU memory" beside the model list), remembered
// in localStorage. Empty: the device's own budget (src/io/memory.ts memoryBudget). Applies to the next model loaded.
import { formatBytes, parseMemorySize, roundUpGB, type MemoryBudget } from '../io/memory';

export const MEMORY_STORAGE_KEY = 'moescope.gpuMemory';
const LABEL = 'GPU memory';

/** The part of the Web Storage API the setting uses (localStorage in the page, a map in tests). */
export type SettingStore = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

/** The remembered budget, or undefined when none is set (a stored value that no longer parses is ignored). */
export function readMemorySetting(store: SettingStore): { bytes: number; origin: string } | undefined {
  const text = store.getItem(MEMORY_STORAGE_KEY);
  if (!text) return undefined;
  try {
    return { bytes: parseMemorySize(text, LABEL), origin: `${LABEL} set to ${text.trim()} in this browser` };
  } catch {
    return undefined;
  }
}

/** Remembers `text` ("40GB"; empty clears the setting). Throws, storing nothing, when it is not a size. */
export function saveMemorySetting(store: SettingStore, text: string): void {
  if (text.trim() === '') {
    store.removeItem(MEMORY_STORAGE_KEY);
    return;
  }
  parseMemorySize(text, LABEL);
  store.setItem(MEMORY_STORAGE_KEY, text.trim());
}

/** How a refusal tells the person to raise the budget in the page. */
export const raiseInPage = (neededBytes: number): string =>
  `set ${LABEL} (beside the model list) to ${roundUpGB(neededBytes)} or more and open the model again`;

/** Wires the page's input: shows the remembered value, or the device's budget as placeholder; saves on change. */
export function bindMemoryInput(input: HTMLInputElement, store: SettingStore, device: MemoryBudget, onError: (e: unknown) => void): void {
  input.value = store.getItem(MEMORY_STORAGE_KEY) ?? '';
  input.placeholder = `${formatBytes(device.bytes)} (device)`;
  input.title = `GPU memory a model may take; empty: ${device.origin}. Applies to the next model opened.`;
  input.addEventListener('change', () => {
    try {
      saveMemorySetting(store, input.value);
    } catch (e) {
      input.value = store.getItem(MEMORY_STORAGE_KEY) ?? '';
      onError(e);
    }
  });
}
