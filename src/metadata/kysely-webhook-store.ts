/**
 * The WebhookStore on top of Kysely, for SQLite and PostgreSQL, over the metadata database (tables of migration
 * 0006; get one with `KyselyMetadataStore.webhookStore()`).
 *
 * A taken name is found with `INSERT ... ON CONFLICT DO NOTHING RETURNING` (no row: `ConflictError`), never by a
 * unique violation. The delivery log is trimmed to the newest `keep` attempts in the transaction that appends.
 */
import { sql } from 'kysely';
import type { Kysely, RawBuilder, Selectable } from 'kysely';
import type { EventType } from '../events/event.ts';
import { ConflictError } from './auth-store.ts';
import type { Database, SqlDialect, WebhookDeliveriesTable, WebhooksTable } from './schema.ts';
import type { Page } from './store.ts';
import type {
  DeliveryAttemptInput,
  DeliveryAttemptRecord,
  DeliveryOutcome,
  NewWebhook,
  WebhookFormat,
  WebhookPatch,
  WebhookRecord,
  WebhookStore,
} from './webhook-store.ts';

/** The delivery log is trimmed on every this many attempts (see `recordDelivery`). */
const TRIM_EVERY = 16;

export class KyselyWebhookStore implements WebhookStore {
  /**
   * @param db the metadata database, migrated (0006 or later); the caller owns it and closes it.
   * @param dialect which SQL dialect `db` speaks.
   */
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {}

  async create(webhook: NewWebhook): Promise<WebhookRecord> {
    const now = Date.now();
    const row = await this.db
      .insertInto('webhooks')
      .values({
        name: webhook.name,
        namespace: webhook.namespace,
        url: webhook.url,
        format: webhook.format,
        events: JSON.stringify(webhook.events),
        repository_glob: webhook.repositoryGlob,
        tag_glob: webhook.tagGlob,
        include_pulls: webhook.includePulls ? 1 : 0,
        headers: JSON.stringify(webhook.headers),
        secret: webhook.secret,
        created_by: webhook.createdBy,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.expression(sql`coalesce(namespace, ''), name`).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) {
      const scope = webhook.namespace === null ? 'global' : `namespace ${webhook.namespace}`;
      throw new ConflictError(`a webhook named ${webhook.name} exists (${scope})`);
    }
    return toRecord(row);
  }

  async get(id: number): Promise<WebhookRecord | null> {
    const row = await this.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? null : toRecord(row);
  }

  async getByName(namespace: string | null, name: string): Promise<WebhookRecord | null> {
    let q = this.db.selectFrom('webhooks').selectAll().where('name', '=', name);
    q = namespace === null ? q.where('namespace', 'is', null) : q.where('namespace', '=', namespace);
    const row = await q.executeTakeFirst();
    return row === undefined ? null : toRecord(row);
  }

  async list(options: {
    namespace?: string | null;
    limit: number;
    after?: number;
  }): Promise<Page<WebhookRecord>> {
    const limit = checkCount('limit', options.limit);
    let q = this.db
      .selectFrom('webhooks')
      .selectAll()
      .orderBy('id')
      .limit(limit + 1);
    if (options.namespace === null) q = q.where('namespace', 'is', null);
    else if (options.namespace !== undefined) q = q.where('namespace', '=', options.namespace);
    if (options.after !== undefined) q = q.where('id', '>', options.after);
    const rows = await q.execute();
    return { items: rows.slice(0, limit).map(toRecord), hasMore: rows.length > limit };
  }

  async listEnabled(): Promise<WebhookRecord[]> {
    const rows = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('enabled', '=', 1)
      .orderBy('id')
      .execute();
    return rows.map(toRecord);
  }

  async wantsPulls(): Promise<boolean> {
    const row = await this.db
      .selectFrom('webhooks')
      .select('id')
      .where('enabled', '=', 1)
      .where('include_pulls', '=', 1)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async update(id: number, patch: WebhookPatch): Promise<WebhookRecord | null> {
    const set: Partial<Record<keyof WebhooksTable, unknown>> = { updated_at: Date.now() };
    if (patch.url !== undefined) set.url = patch.url;
    if (patch.format !== undefined) set.format = patch.format;
    if (patch.events !== undefined) set.events = JSON.stringify(patch.events);
    if (patch.repositoryGlob !== undefined) set.repository_glob = patch.repositoryGlob;
    if (patch.tagGlob !== undefined) set.tag_glob = patch.tagGlob;
    if (patch.includePulls !== undefined) set.include_pulls = patch.includePulls ? 1 : 0;
    if (patch.headers !== undefined) set.headers = JSON.stringify(patch.headers);
    if (patch.enabled !== undefined) {
      set.enabled = patch.enabled ? 1 : 0;
      set.disabled_reason = patch.enabled ? null : (patch.disabledReason ?? null);
    }
    const row = await this.db
      .updateTable('webhooks')
      .set(set as never)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? null : toRecord(row);
  }

  async rotateSecret(id: number, secret: string, previousUntil: Date): Promise<WebhookRecord | null> {
    const row = await this.db
      .updateTable('webhooks')
      .set((eb) => ({
        previous_secret: eb.ref('secret'),
        previous_secret_until: previousUntil.getTime(),
        secret,
        updated_at: Date.now(),
      }))
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? null : toRecord(row);
  }

  async delete(id: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // SQLite enforces foreign keys only when told to: delete the log explicitly on both dialects.
      await trx.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute();
      const result = await trx.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
  }

  async recordDelivery(attempt: DeliveryAttemptInput, keep: number): Promise<void> {
    const limit = checkCount('keep', keep);
    // One statement per attempt (this runs for every delivery): the insert selects from the endpoint's row, so
    // nothing is written for an endpoint deleted meanwhile.
    const inserted = await this.db
      .insertInto('webhook_deliveries')
      .columns([
        'webhook_id',
        'event_id',
        'event_type',
        'job_id',
        'attempt',
        'outcome',
        'status_code',
        'duration_ms',
        'error',
        'response_snippet',
        'at',
      ])
      .expression((eb) =>
        eb
          .selectFrom('webhooks')
          .select([
            'id as webhook_id',
            // Typed: PostgreSQL cannot infer the type of a bare parameter in a select list.
            typed(attempt.eventId, 'text').as('event_id'),
            typed(attempt.eventType, 'text').as('event_type'),
            typed(attempt.jobId, 'bigint').as('job_id'),
            typed(attempt.attempt, 'integer').as('attempt'),
            typed(attempt.outcome, 'text').as('outcome'),
            typed(attempt.statusCode, 'integer').as('status_code'),
            typed(Math.round(attempt.durationMs), 'integer').as('duration_ms'),
            typed(attempt.error, 'text').as('error'),
            typed(attempt.responseSnippet, 'text').as('response_snippet'),
            typed(Date.now(), 'bigint').as('at'),
          ])
          .where('id', '=', attempt.webhookId),
      )
      .returning('id')
      .executeTakeFirst();
    if (inserted === undefined) return;
    // Trimming to the newest `keep` costs a second statement: do it every TRIM_EVERY attempts (per id, so that
    // every endpoint is trimmed in turn), which bounds the log to `keep + TRIM_EVERY` rows of each.
    if (Number(inserted.id) % TRIM_EVERY !== 0) return;
    await this.db
      .deleteFrom('webhook_deliveries')
      .where('webhook_id', '=', attempt.webhookId)
      .where('id', '<=', (eb) =>
        eb
          .selectFrom('webhook_deliveries')
          .select('id')
          .where('webhook_id', '=', attempt.webhookId)
          .orderBy('id', 'desc')
          .offset(limit)
          .limit(1),
      )
      .execute();
  }

  async listDeliveries(
    webhookId: number,
    options: { limit: number; before?: number; outcome?: DeliveryOutcome },
  ): Promise<Page<DeliveryAttemptRecord>> {
    const limit = checkCount('limit', options.limit);
    let q = this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('webhook_id', '=', webhookId)
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (options.before !== undefined) q = q.where('id', '<', options.before);
    if (options.outcome !== undefined) q = q.where('outcome', '=', options.outcome);
    const rows = await q.execute();
    return { items: rows.slice(0, limit).map(toDelivery), hasMore: rows.length > limit };
  }
}

function toRecord(row: Selectable<WebhooksTable>): WebhookRecord {
  return {
    id: Number(row.id),
    name: row.name,
    namespace: row.namespace,
    url: row.url,
    format: row.format as WebhookFormat,
    events: JSON.parse(row.events) as EventType[],
    repositoryGlob: row.repository_glob,
    tagGlob: row.tag_glob,
    includePulls: Number(row.include_pulls) === 1,
    headers: JSON.parse(row.headers) as Record<string, string>,
    secret: row.secret,
    previousSecret: row.previous_secret,
    previousSecretUntil:
      row.previous_secret_until === null ? null : new Date(Number(row.previous_secret_until)),
    enabled: Number(row.enabled) === 1,
    disabledReason: row.disabled_reason,
    createdBy: row.created_by,
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function toDelivery(row: Selectable<WebhookDeliveriesTable>): DeliveryAttemptRecord {
  return {
    id: Number(row.id),
    webhookId: Number(row.webhook_id),
    eventId: row.event_id,
    eventType: row.event_type,
    jobId: row.job_id === null ? null : Number(row.job_id),
    attempt: row.attempt,
    outcome: row.outcome as DeliveryOutcome,
    statusCode: row.status_code,
    durationMs: row.duration_ms,
    error: row.error,
    responseSnippet: row.response_snippet,
    at: new Date(Number(row.at)),
  };
}

function checkCount(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer`);
  return n;
}

/** A bound value with its SQL type (`cast(? as type)`), for select lists. */
function typed<T extends string | number | null>(
  value: T,
  type: 'text' | 'integer' | 'bigint',
): RawBuilder<T> {
  return sql<T>`cast(${value} as ${sql.raw(type)})`;
}
