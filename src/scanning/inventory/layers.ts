/**
 * Applies a stack of image layers, bottom-up, keeping only the files a caller wants: the final content of each
 * wanted path in the merged filesystem, with OCI whiteouts honoured. Each layer is streamed once; bodies of
 * unwanted files are never held in memory.
 */
import type { Chunk } from './byte-source.ts';
import { decompressLayer } from './decompress.ts';
import { WantedFilesTooLargeError } from './errors.ts';
import { DEFAULT_READ_CAP, readTar } from './tar-reader.ts';

/** What happened to one entry of a layer that the walker looked at (for observation and tests). */
export interface LayerEntryEvent {
  /** Index of the layer, 0 = bottom. */
  readonly layer: number;
  readonly path: string;
  readonly size: number;
  /**
   * `read`: a wanted file buffered; `too-large`: wanted but over the cap, skipped; `streamed`: a file streamed
   * through `extract` (kept when it returned a summary); `skipped`: not wanted.
   */
  readonly action: 'read' | 'too-large' | 'streamed' | 'skipped';
}

/** Options of `collectWantedFiles`. */
export interface LayerWalkOptions {
  /** Which regular-file paths (normalised, as `TarEntry.path`) to keep. Called once per file entry. */
  wants(path: string): boolean;
  /**
   * Reduces a wanted file to what its consumer needs, right after it is read (e.g. the header of a Python
   * METADATA file without its long description), so that thousands of kept files stay small. Default: as is.
   */
  shrink?(path: string, content: Buffer): Buffer;
  /** Wanted files larger than this are skipped, not buffered (default 8 MiB). */
  maxFileBytes?: number;
  /** The cap for one wanted path when it differs from `maxFileBytes` (e.g. a database known to be larger). */
  fileCap?(path: string): number | undefined;
  /**
   * Which regular files that `wants` declined are to be streamed through `extract` instead (by path and
   * permission bits). Called once per such entry; must be cheap.
   */
  wantsStream?(path: string, mode: number): boolean;
  /**
   * Reduces a streamed file to a small summary as its body streams past (never the whole body in memory). The
   * summary is kept under the path like a wanted file's content (subject to whiteouts and `maxTotalBytes`);
   * null keeps nothing. May stop reading early. Rejects only with the errors of iterating `body`.
   */
  extract?(path: string, mode: number, body: AsyncIterable<Buffer>): Promise<Buffer | null>;
  /**
   * Cap on the wanted files held at once, all layers together (default 256 MiB): past it the walk fails with
   * `WantedFilesTooLargeError` rather than grow without bound on an image with a huge number of them.
   */
  maxTotalBytes?: number;
  /** Called for every regular-file or hardlink entry after the walker decided on it. */
  onEntry?(event: LayerEntryEvent): void;
}

/** A layer blob: a Node Readable or any async iterable of byte chunks, compressed or not. */
export type LayerBlob = AsyncIterable<Chunk>;

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

function parentAndBase(path: string): [string, string] {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? ['', path] : [path.slice(0, slash), path.slice(slash + 1)];
}

/** Default of `LayerWalkOptions.maxTotalBytes`. */
export const DEFAULT_MAX_TOTAL_BYTES = 256 * 1024 * 1024;

/** A map of file contents that keeps the sum of their sizes. */
class SizedFiles extends Map<string, Buffer> {
  bytes = 0;

  override set(path: string, content: Buffer): this {
    this.bytes += content.length - (this.get(path)?.length ?? 0);
    return super.set(path, content);
  }

  override delete(path: string): boolean {
    this.bytes -= this.get(path)?.length ?? 0;
    return super.delete(path);
  }
}

/**
 * The merged state of the wanted files of the layers applied so far, plus the set of directories that contain
 * any of them, so that hiding a whole directory costs a scan only when it can matter.
 */
class MergedFiles {
  readonly files = new SizedFiles();
  private dirs = new Set<string>();

  /** Removes `path` and, when it was a directory holding wanted files, everything beneath it. */
  removeTree(path: string): void {
    this.files.delete(path);
    if (path === '' || this.dirs.has(path)) this.removeBelow(path);
  }

  /** Removes everything beneath directory `dir` ('' = the root), keeping `dir` itself. */
  removeBelow(dir: string): void {
    if (dir !== '' && !this.dirs.has(dir)) return;
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const key of [...this.files.keys()]) if (key.startsWith(prefix)) this.files.delete(key);
  }

  /** Lays a layer's files over the merged state and recomputes the directory index. */
  overlay(upper: ReadonlyMap<string, Buffer>): void {
    for (const [path, content] of upper) this.files.set(path, content);
    const dirs = new Set<string>();
    for (const path of this.files.keys()) {
      for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/', slash + 1)) {
        dirs.add(path.slice(0, slash));
      }
    }
    this.dirs = dirs;
  }
}

/**
 * Streams the layers in order (first = bottom), and returns, for every wanted path present in the final merged
 * filesystem as a regular file (or a hardlink to a wanted file), its content from the topmost layer that has
 * it. Rejects with the `LayerError` of the first unreadable layer.
 */
export async function collectWantedFiles(
  layers: AsyncIterable<LayerBlob> | Iterable<LayerBlob>,
  options: LayerWalkOptions,
): Promise<Map<string, Buffer>> {
  const defaultCap = options.maxFileBytes ?? DEFAULT_READ_CAP;
  const maxTotal = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
  const merged = new MergedFiles();
  let upper = new SizedFiles();
  const checkTotal = (path: string, layer: number): void => {
    if (merged.files.bytes + upper.bytes > maxTotal) {
      throw new WantedFilesTooLargeError(
        `the wanted files of the layers exceed ${maxTotal} bytes (at layer ${layer}, ${path})`,
      );
    }
  };
  let index = 0;
  for await (const blob of layers) {
    const layer = index++;
    // This layer's own wanted files. Only these are kept: an entry that is not a wanted file (a symlink, a
    // too-large file) hides lower content by removing it from `merged` at once, so no other path is stored.
    upper = new SizedFiles();
    for await (const entry of readTar(decompressLayer(blob))) {
      const [dir, base] = parentAndBase(entry.path);
      // Why whiteouts are applied to `merged` only: per the OCI layer spec a whiteout deletes from the layers
      // *below*, never its own layer's entries, whatever their order inside the tar. `merged` holds exactly
      // the lower layers' state while this layer streams; `upper` is applied on top afterwards.
      if (base === OPAQUE_MARKER) {
        // Opaque directory: the lower layers' children of `dir` are hidden; this layer's own stay.
        merged.removeBelow(dir);
        continue;
      }
      if (base.startsWith(WHITEOUT_PREFIX)) {
        // `.wh.<name>` deletes `<name>` (a file, or a directory with all beneath it) from the lower layers.
        // Other `.wh..wh.` names (aufs hardlink bookkeeping) are metadata, not whiteouts of a path.
        if (!base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) {
          const target = base.slice(WHITEOUT_PREFIX.length);
          merged.removeTree(dir === '' ? target : `${dir}/${target}`);
        }
        continue;
      }
      if (entry.type === 'dir') {
        // A directory merges with a lower directory (nothing beneath is hidden) but replaces a lower file.
        merged.files.delete(entry.path);
        continue;
      }
      // Anything else at a path replaces what lower layers had there, a whole directory included.
      merged.removeTree(entry.path);
      const fileLike = entry.type === 'file' || entry.type === 'hardlink';
      const wanted = fileLike && options.wants(entry.path);
      const streamed =
        fileLike &&
        !wanted &&
        options.extract !== undefined &&
        options.wantsStream?.(entry.path, entry.mode) === true;
      if (entry.type === 'file' && streamed) {
        const summary = await options.extract!(entry.path, entry.mode, entry.stream());
        if (summary) {
          upper.set(entry.path, summary);
          checkTotal(entry.path, layer);
        } else upper.delete(entry.path);
        options.onEntry?.({ layer, path: entry.path, size: entry.size, action: 'streamed' });
      } else if (entry.type === 'file' && wanted) {
        const cap = options.fileCap?.(entry.path) ?? defaultCap;
        if (entry.size > cap) {
          upper.delete(entry.path);
          options.onEntry?.({ layer, path: entry.path, size: entry.size, action: 'too-large' });
        } else {
          const content = await entry.read(cap);
          upper.set(entry.path, options.shrink ? options.shrink(entry.path, content) : content);
          checkTotal(entry.path, layer);
          options.onEntry?.({ layer, path: entry.path, size: entry.size, action: 'read' });
        }
      } else if (entry.type === 'hardlink' && (wanted || streamed)) {
        // A hardlink names its target by path; the content (or summary) is known only when the target was
        // wanted (or streamed) too.
        const target = upper.get(entry.linkname) ?? merged.files.get(entry.linkname);
        if (target) upper.set(entry.path, target);
        else upper.delete(entry.path);
        options.onEntry?.({
          layer,
          path: entry.path,
          size: target?.length ?? 0,
          action: target ? 'read' : 'skipped',
        });
      } else {
        upper.delete(entry.path);
        if (entry.type === 'file')
          options.onEntry?.({ layer, path: entry.path, size: entry.size, action: 'skipped' });
      }
    }
    merged.overlay(upper);
  }
  return merged.files;
}
