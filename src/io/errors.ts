// Errors for everything between a model folder and the engine. Every message starts with the file it is about and,
// where there is one, the field or tensor: `model-00002-of-00003.safetensors: tensor "x": data_offsets [a, b] run …`.

export class ModelFileError extends Error {
  /** File name inside the model folder (or a path / URL when there is no folder). */
  readonly file: string;
  /** The field, tensor or part of the file at fault, e.g. `field "hidden_size"` or `tensor "lm_head.weight"`. */
  readonly field: string | null;

  constructor(file: string, field: string | null, detail: string) {
    super(field ? `${file}: ${field}: ${detail}` : `${file}: ${detail}`);
    this.name = 'ModelFileError';
    this.file = file;
    this.field = field;
  }
}

/** A file the model needs is not in the folder (or the URL answered 404). */
export class MissingFileError extends ModelFileError {
  constructor(file: string, location: string, why?: string) {
    super(file, null, `not found in ${location}${why ? ` (${why})` : ''}`);
    this.name = 'MissingFileError';
  }
}

/** The model is understood (and can be drawn from its config) but the engine cannot run it. */
export class UnsupportedModelError extends ModelFileError {
  constructor(file: string, reason: string) {
    super(file, null, `this model can be drawn in config-only mode but not run: ${reason}`);
    this.name = 'UnsupportedModelError';
  }
}

/** The model would not fit in the GPU memory the adapter allows; thrown before any upload. */
export class OutOfMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutOfMemoryError';
  }
}

/** The field of a whole-file problem in a JSON file: its top-level value (not an object, …). */
export const TOP_LEVEL = 'top level';
/** The field of a JSON file that does not parse (the message gives the position). */
export const JSON_SYNTAX = 'JSON syntax';
/** The field of a file's bytes as text (size, UTF-8). */
export const TEXT = 'text';

/** Field label used in messages: `field "num_experts_per_tok"`. */
export const field = (name: string): string => `field "${name}"`;
/** Tensor label used in messages: `tensor "model.norm.weight"`. */
export const tensorField = (name: string): string => `tensor "${name}"`;
