// Model loading for the browser and Node: byte sources, safetensors, config normalisation, weight mapping, memory
// check, tokenizer. Node's file-system folder lives in ./node-source (not re-exported, so bundles stay browser-safe).
export * from './errors';
export * from './source';
export * from './safetensors';
export * from './config';
export * from './weights';
export * from './memory';
export * from './tokenizer';
export * from './model';
export * from './gguf';
export * from './gguf-model';
