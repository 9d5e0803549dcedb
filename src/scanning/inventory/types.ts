/** The shapes an inventory is made of, shared by the collectors and `inventory()`. */
import type { Ecosystem } from '../versions/index.ts';

/** The package ecosystems the collectors report: those whose version order is known (names as OSV spells them). */
export type { Ecosystem };

/** One installed package found in an image. */
export interface Package {
  readonly ecosystem: Ecosystem;
  /** Name as the ecosystem spells it (PyPI: normalised per PEP 503). */
  readonly name: string;
  readonly version: string;
  /** The source package it was built from (dpkg `Source`, apk origin), when the database names one. */
  readonly sourceName?: string;
  readonly sourceVersion?: string;
  /** Package URL per the purl specification. */
  readonly purl: string;
  /** Paths (in the image, normalised) of the files the package was found in. */
  readonly locations: string[];
}

/** The operating system of an image, from os-release. */
export interface OsInfo {
  /** `ID`, e.g. `debian`, `ubuntu`, `alpine`. */
  readonly id: string;
  /** `VERSION_ID`, e.g. `12`, `22.04`, `3.19.1`; null when absent (Debian testing/sid). */
  readonly versionId: string | null;
  /** `VERSION_CODENAME`, e.g. `bookworm`; null when absent. */
  readonly versionCodename: string | null;
  /** `ID_LIKE`, split on spaces; empty when absent. */
  readonly idLike: readonly string[];
}

/** A source of packages: which files it needs, and how it turns them into packages. */
export interface Collector {
  /** Short name, for diagnostics. */
  readonly name: string;
  /** True for the normalised paths whose content this collector needs. Must be cheap: called per entry. */
  wants(path: string): boolean;
  /**
   * Optional: the part of a wanted file `collect` needs, computed as the file is read, to keep memory small
   * when an image holds thousands of such files. `collect` then receives the shrunk content.
   */
  shrink?(path: string, content: Buffer): Buffer;
  /**
   * Optional: a larger size cap for a wanted path whose files are known to outgrow the default one (an rpm
   * database); undefined keeps the default. Keep it bounded: the file is held in memory whole.
   */
  maxFileBytes?(path: string): number | undefined;
  /**
   * Optional: true for the regular files (by normalised path and permission bits) this collector reads as a
   * stream through `extract` rather than whole: files too large to buffer, such as executables and archives.
   * Only asked about files no collector `wants`; the first collector that says yes gets the file. Must be
   * cheap: called per entry.
   */
  wantsStream?(path: string, mode: number): boolean;
  /**
   * Reduces a streamed file to the small summary `collect` needs, reading `body` (chunks that are only valid
   * until the next one is pulled) at most once and holding a bounded amount of it; may stop early. The summary
   * is put in `collect`'s map under the path; null when the file holds nothing for this collector. Rejects
   * only with the errors of iterating `body` (a truncated layer); malformed content gives null.
   */
  extract?(path: string, mode: number, body: AsyncIterable<Buffer>): Promise<Buffer | null>;
  /**
   * The packages found in `files` (every wanted file of the final filesystem, by path, and the summaries of
   * the streamed ones; the map holds other collectors' files too, so summaries should be recognisable). `os` is the detected operating system, null when unknown. Never throws on
   * malformed content: what cannot be parsed is left out.
   */
  collect(files: ReadonlyMap<string, Buffer>, os: OsInfo | null): Package[];
}
