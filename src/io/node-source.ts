// Model folders on disk, for Node (CLI, tests, tools). Kept out of source.ts so browser bundles never import node:fs.
import { open, readdir, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { MissingFileError, ModelFileError } from './errors';
import { checkRange, DEFAULT_CHUNK_BYTES } from './source';
import type { ByteSource, ModelFolder } from './source';

/** A file read at offsets through one FileHandle (no whole-file buffers). */
export class NodeFileSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly path: string,
    readonly size: number,
    private readonly handle: FileHandle,
  ) {}

  static async open(name: string, path: string): Promise<NodeFileSource> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      return new NodeFileSource(name, path, size, handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.name, this.size, offset, length);
    return this.readUnchecked(offset, length);
  }

  private async readUnchecked(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    // FileHandle.read may return fewer bytes than asked; loop until the range is filled.
    for (let at = 0; at < length; ) {
      const { bytesRead } = await this.handle.read(out, at, length - at, offset + at);
      if (bytesRead === 0) {
        throw new ModelFileError(this.name, null, `file ended at byte ${offset + at} while reading [${offset}, ${offset + length}) (truncated while open?)`);
      }
      at += bytesRead;
    }
    return out;
  }

  async *stream(offset: number, length: number, chunkBytes = DEFAULT_CHUNK_BYTES): AsyncIterable<Uint8Array> {
    checkRange(this.name, this.size, offset, length);
    for (let done = 0; done < length; ) {
      const n = Math.min(chunkBytes, length - done);
      yield await this.readUnchecked(offset + done, n);
      done += n;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/**
 * A model directory. Only files directly inside it can be opened, by plain name: a name taken from an index file
 * ("../../etc/passwd", "a/b") never reaches the file system.
 */
export async function nodeFolder(dir: string): Promise<ModelFolder> {
  const root = resolve(dir);
  let info;
  try {
    info = await stat(root);
  } catch {
    throw new ModelFileError(root, null, 'no such directory');
  }
  if (!info.isDirectory()) throw new ModelFileError(root, null, 'is not a directory');
  const names = async () => {
    const entries = await readdir(root, { withFileTypes: true });
    return entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name);
  };
  return {
    location: root,
    list: names,
    has: async (name) => (await names()).includes(name),
    open: async (name) => {
      if (!(await names()).includes(name)) throw new MissingFileError(name, root);
      return NodeFileSource.open(name, join(root, name));
    },
  };
}
