/**
 * The seam through which metrics and tracing watch storage and database operations without the drivers and
 * stores knowing: `observeMethods` wraps a port (a StorageDriver, a MetadataStore) so that each call of its
 * methods is reported to the observers. Implementations: `metrics/` (latency histograms, error counters) and
 * `tracing/` (a span per call).
 */

/** Which port an operation belongs to. */
export type OperationComponent = 'storage' | 'database';

export interface OperationDescriptor {
  readonly component: OperationComponent;
  /** The implementation: `filesystem`, `s3`, `sqlite`, `postgres`. */
  readonly driver: string;
  /** The method called, e.g. `read`, `putManifest`. */
  readonly operation: string;
}

export interface OperationObserver {
  /**
   * Called when an operation starts; returns the function to call exactly once when it ends, with the error it
   * failed with, if any. For a method returning a stream, the end is when the promise for the stream settles (the
   * bytes flow afterwards). Must be cheap (it runs on every request's hot path) and must not throw.
   */
  begin(operation: OperationDescriptor): (error?: unknown) => void;
}
