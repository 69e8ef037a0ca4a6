// NumPy .npy arrays (format versions 1–3: magic "\x93NUMPY", a Python-dict header, then C-order data), as
// `np.save` writes them; integer arrays only, which is what routing records are.
import { ModelFileError, field } from '../io/errors';

export interface NpyArray {
  shape: number[];
  /** The values as int32 (every supported dtype fits). */
  data: Int32Array;
}

const INT_DTYPES: Record<string, { bytes: number; get: (v: DataView, o: number) => number }> = {
  '|i1': { bytes: 1, get: (v, o) => v.getInt8(o) },
  '|u1': { bytes: 1, get: (v, o) => v.getUint8(o) },
  '<i2': { bytes: 2, get: (v, o) => v.getInt16(o, true) },
  '<u2': { bytes: 2, get: (v, o) => v.getUint16(o, true) },
  '<i4': { bytes: 4, get: (v, o) => v.getInt32(o, true) },
  '<i8': { bytes: 8, get: (v, o) => Number(v.getBigInt64(o, true)) },
};

export const isNpy = (bytes: Uint8Array): boolean =>
  bytes.byteLength >= 10 && bytes[0] === 0x93 && String.fromCharCode(...bytes.subarray(1, 6)) === 'NUMPY';

/** Parses a .npy file's bytes; `file` (and `what`, the field it came from) name it in errors. */
export function parseNpy(bytes: Uint8Array, file: string, what = 'npy'): NpyArray {
  const fail = (detail: string): never => {
    throw new ModelFileError(file, field(what), detail);
  };
  if (!isNpy(bytes)) fail('not a NumPy .npy array (no \\x93NUMPY magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > bytes.byteLength) fail(`header of ${headerLen} bytes runs past the end`);
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) fail(`header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape`);
  if (fortran === 'True') fail('Fortran-order arrays are not supported');
  const dt = INT_DTYPES[descr!] ?? fail(`dtype ${descr} is not an integer type this reader knows (${Object.keys(INT_DTYPES).join(', ')})`);
  const shape = shapeText!.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  if (dataStart + n * dt.bytes > bytes.byteLength) fail(`shape (${shape.join(', ')}) of ${descr} needs ${n * dt.bytes} bytes, the file has ${bytes.byteLength - dataStart}`);
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) data[i] = dt.get(view, dataStart + i * dt.bytes);
  return { shape, data };
}
