/**
 * Administration of garbage collection (system administrators only): start a run (or a dry run) on the job
 * runner, read a run's status and progress, and the history of runs. Starting one is audited (`gc.start`), as is
 * a refused start.
 */
import type { AuditLog } from '../auth/audit.ts';
import { recordAction } from './audit-action.ts';
import type { GcProgress, GcRunRecord } from '../metadata/gc-store.ts';
import type { GcService } from '../gc/service.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './admin-service.ts';
import { invalid, notFound } from './errors.ts';
import { checkLimit } from './validation.ts';
import type { ListResult } from './views.ts';

/** A run as the API and the CLI show it. */
export interface GcRunView {
  readonly id: number;
  readonly state: GcRunRecord['state'];
  readonly dryRun: boolean;
  readonly trigger: string;
  readonly requestedBy: string | null;
  readonly phase: string;
  readonly progress: GcProgress;
  readonly error: string | null;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

export function gcRunView(r: GcRunRecord): GcRunView {
  return { ...r };
}

export class GcAdmin {
  constructor(
    private readonly admin: AdminService,
    private readonly gc: GcService,
    private readonly audit: AuditLog | null,
  ) {}

  /** Queues a run; it starts on an instance running background jobs once no other collection runs. */
  async start(actor: Actor, input: { dryRun?: unknown }): Promise<GcRunView> {
    await this.admin.requireSystem(actor, 'starting garbage collection', 'gc.start');
    if (input.dryRun !== undefined && typeof input.dryRun !== 'boolean')
      throw invalid('dryRun must be true or false', 'dryRun');
    const dryRun = input.dryRun === true;
    const run = await this.gc.request({
      dryRun,
      trigger: 'api',
      requestedBy: actor.principal ? `${actor.principal.kind}:${actor.principal.name}` : null,
    });
    await recordAction(this.audit, actor, 'gc.start', String(run.id), { dryRun }, true);
    return gcRunView(run);
  }

  /** One run; not-found when it does not exist. */
  async get(actor: Actor, id: number): Promise<GcRunView> {
    await this.admin.requireSystem(actor, 'reading garbage collection runs');
    if (!Number.isSafeInteger(id) || id < 1) throw invalid('a run id is a positive whole number', 'id');
    const run = await this.gc.get(id);
    if (run === null) throw notFound(`garbage collection run ${id} does not exist`);
    return gcRunView(run);
  }

  /** Runs, newest first; the cursor is a run id. */
  async list(
    actor: Actor,
    input: { limit?: number | undefined; after?: string | undefined } = {},
  ): Promise<ListResult<GcRunView>> {
    await this.admin.requireSystem(actor, 'reading garbage collection runs');
    const limit = input.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(input.limit, MAX_PAGE_SIZE);
    let before: number | undefined;
    if (input.after !== undefined && input.after !== '') {
      if (!/^[1-9]\d{0,14}$/.test(input.after)) throw invalid('after must be a run id', 'after');
      before = Number(input.after);
    }
    const runs = await this.gc.list(limit + 1, before);
    const items = runs.slice(0, limit);
    const last = items[items.length - 1];
    return { items: items.map(gcRunView), next: runs.length > limit && last ? String(last.id) : null };
  }
}
