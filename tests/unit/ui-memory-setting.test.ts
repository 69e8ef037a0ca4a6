import { describe, expect, it } from 'vitest';
import { MEMORY_STORAGE_KEY, raiseInPage, readMemorySetting, saveMemorySetting, type SettingStore } from '../../src/ui/memory-setting';
import { checkMemory, limitsOf, memoryBudget } from '../../src/io/memory';
import { normalizeConfig } from '../../src/io/config';

function mapStore(): SettingStore & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return { map, getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v), removeItem: (k) => void map.delete(k) };
}

describe('the page GPU-memory setting', () => {
  it('is remembered, cleared by an empty value, and refuses what is not a size without storing it', () => {
    const store = mapStore();
    expect(readMemorySetting(store)).toBeUndefined();
    saveMemorySetting(store, ' 12GB ');
    expect(store.map.get(MEMORY_STORAGE_KEY)).toBe('12GB');
    expect(readMemorySetting(store)).toEqual({ bytes: 12e9, origin: 'GPU memory set to 12GB in this browser' });
    expect(() => saveMemorySetting(store, 'lots')).toThrow('GPU memory: "lots" is not a size');
    expect(store.map.get(MEMORY_STORAGE_KEY)).toBe('12GB');
    saveMemorySetting(store, '');
    expect(store.map.has(MEMORY_STORAGE_KEY)).toBe(false);
    store.map.set(MEMORY_STORAGE_KEY, 'garbage'); // an older or hand-edited value
    expect(readMemorySetting(store)).toBeUndefined();
  });

  it('a refusal in the page names the setting and the size to set; that size then fits', () => {
    const config = normalizeConfig({
      model_type: 'mixtral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
      num_attention_heads: 32, num_key_value_heads: 8, num_local_experts: 8, num_experts_per_tok: 2, torch_dtype: 'bfloat16',
    }, 'config.json');
    const adapter = { maxBufferSize: 2 ** 40, maxStorageBufferBindingSize: 2 ** 31 };
    const refused = checkMemory(config, limitsOf(adapter, memoryBudget([]), raiseInPage), { contextLength: 1024 }, 'Mixtral');
    expect(refused.message).toMatch(/\(a default: the adapter reports no memory size\); set GPU memory \(beside the model list\) to 94GB or more and open the model again, or try config-only mode$/);
    const store = mapStore();
    saveMemorySetting(store, '94GB');
    const raised = limitsOf(adapter, memoryBudget([], readMemorySetting(store)), raiseInPage);
    expect(checkMemory(config, raised, { contextLength: 1024 }, 'Mixtral').fits).toBe(true);
  });
});
