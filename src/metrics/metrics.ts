/**
 * The registry's Prometheus metrics: one prom-client `Registry` per instance (not the global one: a process, a
 * test suite, may build several apps), the process's default metrics, and Berth's own (see docs/metrics.md).
 */
import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { ConflictError, NotFoundError } from '../metadata/auth-store.ts';
import type { OperationDescriptor, OperationObserver } from '../observability/operation-observer.ts';
import { ObjectNotFoundError } from '../storage/driver.ts';
import { FastCounter, FastHistogram, type CounterSeries, type HistogramSeries } from './fast-metrics.ts';

/** The database connections now: `total` open, `idle` among them, callers `waiting` for one. */
export interface ConnectionStats {
  readonly total: number;
  readonly idle?: number;
  readonly waiting?: number;
}

/** One row of the job queue's depth: how many jobs of `queue` are in `state`. */
export interface QueueDepth {
  readonly queue: string;
  readonly state: string;
  readonly count: number;
}

export interface BerthMetricsOptions {
  /** Reads the database connection pool's counts at each scrape; absent: the gauge has no samples. */
  readonly connections?: (() => ConnectionStats) | undefined;
  /** Counts the jobs by queue and state at each scrape; absent: the gauge has no samples. */
  readonly jobQueueDepth?: (() => Promise<readonly QueueDepth[]>) | undefined;
  /** Collect the process's default metrics (CPU, memory, event loop, GC). Default true. */
  readonly defaultMetrics?: boolean;
}

/** Latency buckets (seconds) for requests and operations: 0.5 ms to 30 s. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface HttpChildren {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
}

interface OperationChildren {
  readonly duration: HistogramSeries;
  readonly errors: CounterSeries;
}

/** What a successful request did, for the push and pull counters. */
export type RegistryActivity = 'blobPush' | 'blobPull' | 'manifestPush' | 'manifestPull';

export class BerthMetrics {
  readonly registry: Registry;
  /** Reports storage and database operations to the operation histograms and error counters. */
  readonly operationObserver: OperationObserver;

  // The per-request metrics are `Fast*` (see fast-metrics.ts): prom-client's cost several percent of a manifest GET.
  private readonly httpRequests: FastCounter;
  private readonly httpDuration: FastHistogram;
  private readonly requestBytes: CounterSeries;
  private readonly responseBytes: CounterSeries;
  private readonly uploads: Gauge;
  private readonly activity: Record<RegistryActivity, CounterSeries>;
  private readonly authFailures: Counter<'reason'>;
  private readonly webhookDeliveries: Counter<'outcome'>;
  private readonly scans: Counter<'scanner' | 'outcome'>;
  private readonly scanSeconds: Counter<'scanner'>;
  private readonly pullsRefused: Counter<'reason'>;
  private readonly proxyRequests: Counter<'upstream' | 'kind' | 'result'>;
  private readonly proxyUpstreamBytes: Counter<'upstream'>;
  /** Series by `method route status`, so that a request costs one Map lookup. */
  private readonly httpChildren = new Map<string, HttpChildren>();
  private connections: (() => ConnectionStats) | undefined;
  private jobQueueDepth: (() => Promise<readonly QueueDepth[]>) | undefined;

  constructor(options: BerthMetricsOptions = {}) {
    const registry = new Registry();
    const registers = [registry];
    this.registry = registry;
    this.connections = options.connections;
    this.jobQueueDepth = options.jobQueueDepth;
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

    const counter = (name: string, help: string): CounterSeries =>
      new FastCounter(registry, name, help, []).labels();
    this.httpRequests = new FastCounter(
      registry,
      'berth_http_requests_total',
      'HTTP requests answered, by method, route template and status.',
      ['method', 'route', 'status'],
    );
    this.httpDuration = new FastHistogram(
      registry,
      'berth_http_request_duration_seconds',
      'Time from receiving a request to finishing its response, by method, route template and status.',
      ['method', 'route', 'status'],
      DURATION_BUCKETS,
    );
    this.requestBytes = counter('berth_http_request_bytes_total', 'Request body bytes received.');
    this.responseBytes = counter('berth_http_response_bytes_total', 'Response body bytes sent.');
    this.uploads = new Gauge({
      name: 'berth_uploads_in_progress',
      help: 'POST, PATCH and PUT requests on upload endpoints in flight.',
      registers,
    });
    this.activity = {
      blobPush: counter(
        'berth_blob_pushes_total',
        'Blob uploads completed (final PUT, monolithic POST, or cross-repository mount).',
      ),
      blobPull: counter(
        'berth_blob_pulls_total',
        'Successful blob GETs (200, 206, or a 307 redirect to storage).',
      ),
      manifestPush: counter('berth_manifest_pushes_total', 'Successful manifest PUTs.'),
      manifestPull: counter(
        'berth_manifest_pulls_total',
        'Successful manifest GETs (200; HEAD and 304 are not pulls).',
      ),
    };
    const storageDuration = new FastHistogram(
      registry,
      'berth_storage_operation_duration_seconds',
      'Storage driver calls, by driver and method (a read ends when its stream is open).',
      ['driver', 'operation'],
      DURATION_BUCKETS,
    );
    const storageErrors = new FastCounter(
      registry,
      'berth_storage_operation_errors_total',
      'Storage driver calls that failed (an absent object is an answer, not a failure).',
      ['driver', 'operation'],
    );
    const databaseDuration = new FastHistogram(
      registry,
      'berth_database_operation_duration_seconds',
      'Metadata store calls, by driver and method.',
      ['driver', 'operation'],
      DURATION_BUCKETS,
    );
    const databaseErrors = new FastCounter(
      registry,
      'berth_database_operation_errors_total',
      'Metadata store calls that failed.',
      ['driver', 'operation'],
    );
    // collect() runs with the gauge as `this`: these read the functions set now or later.
    const readConnections = (): ConnectionStats | undefined => this.connections?.();
    const readDepth = (): (() => Promise<readonly QueueDepth[]>) | undefined => this.jobQueueDepth;
    new Gauge({
      name: 'berth_database_connections',
      help: 'Database connections: total open, idle, and callers waiting for one (PostgreSQL pool; SQLite: total 1).',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const stats = readConnections();
        if (stats === undefined) return;
        this.set({ state: 'total' }, stats.total);
        if (stats.idle !== undefined) this.set({ state: 'idle' }, stats.idle);
        if (stats.waiting !== undefined) this.set({ state: 'waiting' }, stats.waiting);
      },
    });
    this.authFailures = new Counter({
      name: 'berth_auth_failures_total',
      help: 'Requests refused: unauthenticated (401), denied (403), token (a 401 or 403 of the token endpoint).',
      labelNames: ['reason'],
      registers,
    });
    new Gauge({
      name: 'berth_job_queue_depth',
      help: 'Jobs in the durable queue, by queue and state.',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        this.reset();
        const depth = readDepth();
        if (depth === undefined) return;
        for (const row of await depth()) this.set({ queue: row.queue, state: row.state }, row.count);
      },
    });
    this.scans = new Counter({
      name: 'berth_scans_total',
      help: 'Image scans, by scanner (berth or an external scanner) and outcome (done, failed, unsupported).',
      labelNames: ['scanner', 'outcome'],
      registers,
    });
    this.scanSeconds = new Counter({
      name: 'berth_scan_seconds_total',
      help: 'Time spent scanning images, by scanner.',
      labelNames: ['scanner'],
      registers,
    });
    this.pullsRefused = new Counter({
      name: 'berth_pulls_refused_total',
      help: "Manifest pulls a namespace's policy refused (412), by reason.",
      labelNames: ['reason'],
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: 'berth_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.proxyRequests = new Counter({
      name: 'berth_proxy_requests_total',
      help: 'Pull-through cache lookups by upstream, kind (manifest, blob) and result (hit, miss, stale, error).',
      labelNames: ['upstream', 'kind', 'result'],
      registers,
    });
    this.proxyUpstreamBytes = new Counter({
      name: 'berth_proxy_upstream_bytes_total',
      help: 'Blob bytes the pull-through cache fetched from each upstream.',
      labelNames: ['upstream'],
      registers,
    });

    const children = new WeakMap<OperationDescriptor, OperationChildren>();
    const childrenOf = (d: OperationDescriptor): OperationChildren => {
      let c = children.get(d);
      if (c === undefined) {
        const storage = d.component === 'storage';
        const labels = [d.driver, d.operation];
        c = {
          duration: (storage ? storageDuration : databaseDuration).labels(...labels),
          errors: (storage ? storageErrors : databaseErrors).labels(...labels),
        };
        c.errors.inc(0); // the series exists from the first call, so rate() of it starts at 0
        children.set(d, c);
      }
      return c;
    };
    this.operationObserver = {
      begin(operation) {
        const c = childrenOf(operation);
        const start = performance.now();
        return (error) => {
          c.duration.observe((performance.now() - start) / 1000);
          if (error !== undefined && !isExpectedAnswer(error)) c.errors.inc();
        };
      },
    };
  }

  /** Sets (or replaces) the function counting jobs at each scrape. */
  setJobQueueDepth(fn: (() => Promise<readonly QueueDepth[]>) | undefined): void {
    this.jobQueueDepth = fn;
  }

  /** Sets (or replaces) the function reading the database connection counts at each scrape. */
  setConnections(fn: (() => ConnectionStats) | undefined): void {
    this.connections = fn;
  }

  /** Counts one webhook delivery attempt with its outcome (e.g. `success`, `failure`, `gave_up`). */
  webhookDelivery(outcome: string): void {
    this.webhookDeliveries.inc({ outcome });
  }

  /** Counts one scan of an image with its outcome and duration. */
  scan(scanner: string, outcome: string, seconds: number): void {
    this.scans.inc({ scanner, outcome });
    this.scanSeconds.inc({ scanner }, seconds);
  }

  /** Counts one pull a pull policy refused (`reason`: `unsigned image`, `vulnerable image`, ...). */
  pullRefused(reason: string): void {
    this.pullsRefused.inc({ reason });
  }

  /** Counts one pull-through cache lookup. */
  proxyLookup(upstream: string, kind: 'manifest' | 'blob', result: 'hit' | 'miss' | 'stale' | 'error'): void {
    this.proxyRequests.inc({ upstream, kind, result });
  }

  /** Counts blob bytes fetched from an upstream. */
  proxyBytes(upstream: string, bytes: number): void {
    this.proxyUpstreamBytes.inc({ upstream }, bytes);
  }

  /** Counts one request answered: `route` is a template (never a raw path), `seconds` its duration. */
  httpRequest(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let c = this.httpChildren.get(key);
    if (c === undefined) {
      const labels = [method, route, String(status)];
      c = { requests: this.httpRequests.labels(...labels), duration: this.httpDuration.labels(...labels) };
      this.httpChildren.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(seconds);
  }

  /** Adds request and response body bytes. */
  httpBytes(received: number, sent: number): void {
    this.requestBytes.inc(received);
    this.responseBytes.inc(sent);
  }

  /** Counts one push or pull. */
  registryActivity(kind: RegistryActivity): void {
    this.activity[kind].inc();
  }

  /** One more (+1) or one fewer (-1) upload request in flight. */
  uploadsInProgress(delta: 1 | -1): void {
    this.uploads.inc(delta);
  }

  /** Counts one refused request. */
  authFailure(reason: 'unauthenticated' | 'denied' | 'token'): void {
    this.authFailures.inc({ reason });
  }

  /** The text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of `scrape()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Errors that are answers rather than failures: an absent object or row, a name already taken. */
function isExpectedAnswer(error: unknown): boolean {
  return (
    error instanceof ObjectNotFoundError || error instanceof NotFoundError || error instanceof ConflictError
  );
}
