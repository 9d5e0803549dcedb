/**
 * Garbage collection as the registry runs it: runs requested through the API (queued on the job runner, so any
 * instance may take them), scheduled runs (`gc.schedule`), and runs in the calling process (`berth gc`); each is
 * recorded in `gc_runs` with its progress, for the API's status and history.
 */
import { randomUUID } from 'node:crypto';
import { RetryLaterError } from '../jobs/job.ts';
import type { JobRunner } from '../jobs/runner.ts';
import type { Logger } from '../logger.ts';
import { EMPTY_PROGRESS, type GcProgress, type GcRunRecord, type GcStore } from '../metadata/gc-store.ts';
import { type Collector, GcBusyError } from './collector.ts';

/** The job queue of garbage collection runs (and its schedule's name). */
export const GC_QUEUE = 'gc';

/** How often a running collection stores its progress. */
const PROGRESS_INTERVAL_MS = 1_000;

interface GcJobPayload {
  /** The run requested through the API; null for a scheduled run (recorded once it starts). */
  readonly runId: number | null;
  readonly dryRun: boolean;
}

export interface GcRequest {
  readonly dryRun: boolean;
  /** `api`, `cli` or `schedule`. */
  readonly trigger: string;
  readonly requestedBy: string | null;
}

export class GcService {
  constructor(
    private readonly store: GcStore,
    private readonly collector: Collector,
    private readonly jobs: JobRunner,
    private readonly log: Logger,
  ) {}

  /** Queues a run on the job runner (an instance with jobs enabled takes it); returns the queued run. */
  async request(request: GcRequest): Promise<GcRunRecord> {
    const id = await this.store.createRun({ ...request, now: Date.now() });
    await this.jobs.enqueue(GC_QUEUE, { runId: id, dryRun: request.dryRun } satisfies GcJobPayload, {
      dedupeKey: `run:${id}`,
    });
    return (await this.store.getRun(id)) as GcRunRecord;
  }

  /**
   * Runs a collection in this process and waits for it; `onProgress` sees it advance. Throws GcBusyError when
   * another collection is running (nothing is recorded then).
   */
  async runHere(
    request: GcRequest,
    onProgress?: (phase: string, progress: GcProgress) => void,
  ): Promise<GcRunRecord> {
    const id = await this.execute(
      request.dryRun,
      () => this.store.createRun({ ...request, now: Date.now() }),
      undefined,
      onProgress,
    );
    return (await this.store.getRun(id)) as GcRunRecord;
  }

  /** The run, or null. */
  get(id: number): Promise<GcRunRecord | null> {
    return this.store.getRun(id);
  }

  /** Runs, newest first. */
  list(limit: number, before?: number): Promise<GcRunRecord[]> {
    return this.store.listRuns(limit, before);
  }

  /**
   * Registers the `gc` queue on `runner` and, unless `schedule` is `off`, schedules runs. Call before
   * `runner.start()`.
   */
  register(schedule: string): void {
    this.jobs.register(
      GC_QUEUE,
      async (payload, context) => {
        const { runId, dryRun } = payload as GcJobPayload;
        try {
          await this.execute(
            dryRun,
            async () =>
              runId ??
              (await this.store.createRun({
                dryRun,
                trigger: 'schedule',
                requestedBy: null,
                now: Date.now(),
              })),
            context.signal,
          );
        } catch (e) {
          if (!(e instanceof GcBusyError)) throw e;
          // A requested run waits for the running one; a scheduled slot is simply skipped.
          if (runId !== null) throw new RetryLaterError(e.message, new Date(Date.now() + 30_000));
          this.log.info({}, 'scheduled garbage collection skipped: another collection is running');
        }
      },
      { maxAttempts: 20, concurrency: 1 },
    );
    if (schedule !== 'off') this.jobs.schedule(GC_QUEUE, schedule, GC_QUEUE, { runId: null, dryRun: false });
  }

  /** Runs under the lease, recording the run `begin` creates (once the lease is held); returns its id. */
  private async execute(
    dryRun: boolean,
    begin: () => Promise<number>,
    signal?: AbortSignal,
    onProgress?: (phase: string, progress: GcProgress) => void,
  ): Promise<number> {
    let id: number | null = null;
    let last = 0;
    let latest: GcProgress | null = null;
    let saving: Promise<void> = Promise.resolve();
    try {
      const progress = await this.collector.run({
        dryRun,
        holder: `gc:${randomUUID()}`,
        ...(signal ? { signal } : {}),
        onStart: async () => {
          id = await begin();
          const now = Date.now();
          await this.store.startRun(id, now);
          await this.store.failAbandonedRuns(id, 'interrupted: the process running it stopped', now);
        },
        onProgress: (phase, p) => {
          latest = p;
          onProgress?.(phase, p);
          const now = Date.now();
          if (id === null || now - last < PROGRESS_INTERVAL_MS) return;
          last = now;
          const runId = id;
          saving = saving.then(() => this.store.updateRun(runId, phase, p).catch(() => undefined));
        },
      });
      await saving;
      // onStart ran before any work (the collector calls it once the lease is held), so the run is recorded.
      const runId = id as unknown as number;
      await this.store.finishRun(runId, 'succeeded', progress, null, Date.now());
      this.log.info({ run: runId, dryRun, ...flat(progress) }, 'garbage collection finished');
      return runId;
    } catch (e) {
      await saving;
      if (id !== null) {
        const message = e instanceof Error ? e.message : String(e);
        await this.store
          .finishRun(id, 'failed', latest ?? EMPTY_PROGRESS, message, Date.now())
          .catch(() => undefined);
        this.log.warn({ run: id, err: e }, 'garbage collection failed');
      }
      throw e;
    }
  }
}

function flat(p: GcProgress): Record<string, number> {
  return {
    manifestsDeleted: p.manifestsDeleted,
    blobsDeleted: p.blobsDeleted,
    bytesFreed: p.bytesFreed,
    orphansDeleted: p.orphansDeleted,
  };
}
