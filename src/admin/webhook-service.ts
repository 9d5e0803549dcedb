/**
 * The webhook administration use cases, shared by the HTTP API (`http/admin/webhooks.ts`) and the CLI
 * (`cli/admin/webhooks.ts`): endpoints, their secrets, their delivery log, redelivery and test events.
 *
 * Who may do what (decided by `AdminService`, so one place says who an administrator is):
 * - global endpoints (`namespace: null`, they hear about every repository): the system and system administrators;
 * - an endpoint of a namespace: also users with the `admin` role on that namespace (robots never: see the
 *   header of `admin-service.ts`).
 * Listing shows administrators every endpoint and namespace administrators those of their namespaces.
 *
 * Every change is audited (`webhook.create`, `webhook.update`, `webhook.delete`, `webhook.rotate-secret`,
 * `webhook.test`, `webhook.redeliver`; target: the namespace, or null for a global endpoint), never with the
 * secret, header values or the URL's query (it may carry a token). The secret is returned by `create` and
 * `rotateSecret` only; views say `secretSet` and mask header values.
 *
 * What belongs to delivery (the SSRF guard, enqueueing a test event, moving a dead job back to the queue) comes
 * in as functions, so this module depends on no delivery code.
 */
import type { EventType } from '../events/event.ts';
import { EVENT_TYPES, PULL_EVENT_TYPES, isEventType } from '../events/event.ts';
import type { AuditLog } from '../auth/audit.ts';
import { recordAction } from './audit-action.ts';
import { ConflictError } from '../metadata/auth-store.ts';
import type {
  DeliveryAttemptRecord,
  DeliveryOutcome,
  WebhookFormat,
  WebhookPatch,
  WebhookRecord,
  WebhookStore,
} from '../metadata/webhook-store.ts';
import type { Actor, AdminService, PageInput } from './admin-service.ts';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './admin-service.ts';
import { conflict, forbidden, invalid, notFound } from './errors.ts';
import { checkLimit, checkNamespaceName, isComponent, MAX_NAME_LENGTH } from './validation.ts';
import type { ListResult } from './views.ts';
import { generateSecret as generateWebhookSecret } from '../webhooks/signing.ts';

export interface WebhookServiceDeps {
  readonly store: WebhookStore;
  /** `webhooks.secretGracePeriod` in milliseconds: how long a rotated-out secret still signs. */
  readonly secretGracePeriod: number;
  /**
   * Resolves when deliveries to `url` are allowed; rejects (with a message saying why) when the SSRF guard
   * refuses it: a loopback, private, link-local or cloud metadata address whose host is not in
   * `webhooks.allowedHosts`.
   */
  readonly checkUrl: (url: URL) => Promise<void>;
  /** Enqueues a test event for the endpoint (delivered like any event, and logged in its delivery log). */
  readonly sendTest: (webhook: WebhookRecord, actor: Actor) => Promise<void>;
  /** Moves the dead delivery job `jobId` back to the queue; false when it is not dead (or no longer exists). */
  readonly redeliver: (jobId: number) => Promise<boolean>;
  /** A new `whsec_` secret; default `generateSecret` of `webhooks/signing.ts`. */
  readonly generateSecret?: () => string;
  /** The clock, in epoch ms; default `Date.now`. */
  readonly now?: () => number;
}

export const WEBHOOK_FORMATS: readonly WebhookFormat[] = ['distribution', 'cloudevents'];
export const DELIVERY_OUTCOMES: readonly DeliveryOutcome[] = [
  'delivered',
  'failed',
  'dead',
  'gone',
  'refused',
];
export const MAX_URL_LENGTH = 2048;
export const MAX_GLOB_LENGTH = 255;
export const MAX_HEADERS = 20;
const MAX_HEADER_NAME_LENGTH = 256;
const MAX_HEADER_VALUE_LENGTH = 4096;
/** What views show instead of a header value; sent back in an update, it keeps the stored value. */
export const MASKED_VALUE = '********';
/** Headers the delivery sets itself (or that HTTP owns): an endpoint may not set them. */
export const RESERVED_HEADERS: readonly string[] = [
  'content-type',
  'content-length',
  'host',
  'user-agent',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'transfer-encoding',
  'connection',
];
/** An HTTP field name (RFC 9110 token). */
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** An HTTP field value: visible ASCII, spaces and tabs, no leading or trailing whitespace. */
const HEADER_VALUE_RE = /^(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?$/;
/** Globs: printable ASCII without spaces. */
const GLOB_RE = /^[\x21-\x7e]+$/;

/** An endpoint as the admin API and the CLI show it: no secret, header values masked. */
export interface WebhookView {
  readonly id: number;
  readonly name: string;
  readonly namespace: string | null;
  readonly url: string;
  readonly format: WebhookFormat;
  readonly events: readonly EventType[];
  readonly repositoryGlob: string;
  readonly tagGlob: string;
  readonly includePulls: boolean;
  /** Header names, each with `MASKED_VALUE` (values may be credentials). */
  readonly headers: Readonly<Record<string, string>>;
  /** Always true: every endpoint has a secret; it is shown only when created or rotated. */
  readonly secretSet: true;
  /** Until when the secret before the last rotation still signs; null when there is none (or it expired). */
  readonly previousSecretUntil: Date | null;
  readonly enabled: boolean;
  readonly disabledReason: string | null;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** An endpoint with its secret: only the answer to `create` and `rotateSecret`. */
export interface WebhookWithSecret extends WebhookView {
  readonly secret: string;
}

export interface DeliveryView {
  readonly id: number;
  readonly eventId: string;
  readonly eventType: string;
  readonly attempt: number;
  readonly outcome: DeliveryOutcome;
  readonly statusCode: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  readonly responseSnippet: string | null;
  readonly jobId: number | null;
  readonly at: Date;
}

export interface WebhookInput {
  readonly name: string;
  readonly url: string;
  readonly format?: string | undefined;
  /** Event types; empty or absent: every type but pulls. */
  readonly events?: readonly string[] | undefined;
  readonly repositoryGlob?: string | undefined;
  readonly tagGlob?: string | undefined;
  readonly includePulls?: boolean | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

export interface WebhookChanges {
  readonly url?: string | undefined;
  readonly format?: string | undefined;
  readonly events?: readonly string[] | undefined;
  readonly repositoryGlob?: string | undefined;
  readonly tagGlob?: string | undefined;
  readonly includePulls?: boolean | undefined;
  /** Replaces every header; a value of `MASKED_VALUE` keeps that header's stored value. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly enabled?: boolean | undefined;
}

export interface DeliveryQuery extends PageInput {
  readonly outcome?: string | undefined;
}

function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
}

function fromStore(e: unknown): never {
  if (e instanceof ConflictError) throw conflict(e.message);
  throw e;
}

/** The URL as audited: without credentials (refused anyway) and with its query replaced by `?...`. */
function auditUrl(url: string): string {
  try {
    const u = new URL(url);
    const query = u.search !== '';
    u.search = '';
    u.hash = '';
    return `${u.toString()}${query ? '?...' : ''}`;
  } catch {
    return '(invalid)';
  }
}

export function webhookView(w: WebhookRecord, now = Date.now()): WebhookView {
  const previousValid =
    w.previousSecret !== null && w.previousSecretUntil !== null && w.previousSecretUntil.getTime() > now;
  return {
    id: w.id,
    name: w.name,
    namespace: w.namespace,
    url: w.url,
    format: w.format,
    events: [...w.events],
    repositoryGlob: w.repositoryGlob,
    tagGlob: w.tagGlob,
    includePulls: w.includePulls,
    headers: Object.fromEntries(Object.keys(w.headers).map((name) => [name, MASKED_VALUE])),
    secretSet: true,
    previousSecretUntil: previousValid ? w.previousSecretUntil : null,
    enabled: w.enabled,
    disabledReason: w.disabledReason,
    createdBy: w.createdBy,
    createdAt: w.createdAt,
    updatedAt: w.updatedAt,
  };
}

export function deliveryView(d: DeliveryAttemptRecord): DeliveryView {
  return {
    id: d.id,
    eventId: d.eventId,
    eventType: d.eventType,
    attempt: d.attempt,
    outcome: d.outcome,
    statusCode: d.statusCode,
    durationMs: d.durationMs,
    error: d.error,
    responseSnippet: d.responseSnippet,
    jobId: d.jobId,
    at: d.at,
  };
}

// --- validation ------------------------------------------------------------------------------------

export function checkWebhookName(name: string, field = 'name'): string {
  if (!isComponent(name)) {
    throw invalid(
      `invalid webhook name ${quote(name)}: lowercase letters and digits, separated by '.', '_', '__' or '-', at most ${MAX_NAME_LENGTH} characters`,
      field,
    );
  }
  return name;
}

/** An absolute http(s) URL without credentials, at most 2048 characters (the SSRF guard is checked apart). */
export function checkWebhookUrl(value: string, field = 'url'): URL {
  if (value.length > MAX_URL_LENGTH)
    throw invalid(`the URL must have at most ${MAX_URL_LENGTH} characters`, field);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`invalid URL ${quote(value)}: an absolute http:// or https:// URL`, field);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalid(`invalid URL ${quote(value)}: the scheme must be http or https`, field);
  if (url.username !== '' || url.password !== '')
    throw invalid('the URL must not hold credentials: send them in a header (e.g. Authorization)', field);
  return url;
}

export function checkFormat(value: string, field = 'format'): WebhookFormat {
  if (!(WEBHOOK_FORMATS as readonly string[]).includes(value))
    throw invalid(`invalid format ${quote(value)}: one of ${WEBHOOK_FORMATS.join(', ')}`, field);
  return value as WebhookFormat;
}

export function checkEvents(values: readonly string[], field = 'events'): EventType[] {
  const out: EventType[] = [];
  for (const v of values) {
    if (!isEventType(v))
      throw invalid(`unknown event type ${quote(v)}: one of ${EVENT_TYPES.join(', ')}`, field);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

export function checkGlob(value: string, field: string): string {
  if (value.length === 0 || value.length > MAX_GLOB_LENGTH || !GLOB_RE.test(value)) {
    throw invalid(
      `invalid ${field} ${quote(value)}: a non-empty glob of at most ${MAX_GLOB_LENGTH} printable characters without spaces`,
      field,
    );
  }
  return value;
}

/** Static headers: at most 20, valid names and values, no reserved name, no name twice (in any case). */
export function checkHeaders(
  headers: Readonly<Record<string, string>>,
  field = 'headers',
): Record<string, string> {
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) throw invalid(`at most ${MAX_HEADERS} headers`, field);
  const seen = new Set<string>();
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (name.length === 0 || name.length > MAX_HEADER_NAME_LENGTH || !HEADER_NAME_RE.test(name))
      throw invalid(`invalid header name ${quote(name)}`, field);
    if (RESERVED_HEADERS.includes(lower))
      throw invalid(
        `the header ${name} is set by the registry and cannot be configured (reserved: ${RESERVED_HEADERS.join(', ')})`,
        field,
      );
    if (seen.has(lower)) throw invalid(`the header ${name} is given twice`, field);
    seen.add(lower);
    if (typeof value !== 'string' || value.length > MAX_HEADER_VALUE_LENGTH || !HEADER_VALUE_RE.test(value))
      throw invalid(
        `invalid value for header ${name}: printable ASCII without line breaks, at most ${MAX_HEADER_VALUE_LENGTH} characters`,
        field,
      );
    out[name] = value;
  }
  return out;
}

function checkPulls(events: readonly EventType[], includePulls: boolean): void {
  const pulls = events.filter((e) => PULL_EVENT_TYPES.includes(e));
  if (pulls.length > 0 && !includePulls)
    throw invalid(`pull events (${pulls.join(', ')}) need includePulls: true`, 'events');
}

function positiveId(value: number, what: string, field: string): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw invalid(`the ${what} must be a positive whole number`, field);
  return value;
}

// --- the use cases ---------------------------------------------------------------------------------

export class WebhookService {
  private readonly generateSecret: () => string;
  private readonly now: () => number;

  /**
   * @param admin decides who administers what (and audits refusals).
   * @param audit where changes are recorded.
   */
  constructor(
    private readonly admin: AdminService,
    private readonly audit: AuditLog,
    private readonly deps: WebhookServiceDeps,
  ) {
    this.generateSecret = deps.generateSecret ?? generateWebhookSecret;
    this.now = deps.now ?? Date.now;
  }

  /**
   * Endpoints ordered by id (the cursor is an id). `namespace`: undefined lists what the caller may see (every
   * endpoint for administrators, those of their namespaces for namespace administrators), a string that
   * namespace's (its administrators only).
   */
  async list(
    actor: Actor,
    filter: PageInput & { namespace?: string | undefined } = {},
  ): Promise<ListResult<WebhookView>> {
    const limit = filter.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(filter.limit, MAX_PAGE_SIZE);
    let after: number | undefined;
    if (filter.after !== undefined && filter.after !== '') {
      if (!/^\d{1,15}$/.test(filter.after)) throw invalid('after must be a webhook id', 'after');
      after = Number(filter.after);
    }
    const { store } = this.deps;
    if (filter.namespace !== undefined) {
      const namespace = checkNamespaceName(filter.namespace, 'namespace');
      await this.admin.requireNamespaceAdmin(actor, namespace, 'listing the webhooks of namespace');
      return this.listOf(await store.list({ namespace, limit, ...(after !== undefined ? { after } : {}) }));
    }
    if (this.admin.isSystem(actor))
      return this.listOf(await store.list({ limit, ...(after !== undefined ? { after } : {}) }));
    if (actor.principal?.kind !== 'user')
      throw forbidden('requested access to the resource is denied: listing webhooks needs a user account');
    // A namespace administrator: every endpoint, filtered to the namespaces they administer. Endpoints are few
    // (tens), so reading past the ones filtered out is cheap.
    const administered = new Map<string, boolean>();
    const items: WebhookRecord[] = [];
    let cursor = after;
    for (;;) {
      const page = await store.list({ limit: 500, ...(cursor !== undefined ? { after: cursor } : {}) });
      for (const w of page.items) {
        if (w.namespace === null) continue;
        let ok = administered.get(w.namespace);
        if (ok === undefined) {
          ok = await this.admin.administers(actor, w.namespace);
          administered.set(w.namespace, ok);
        }
        if (ok) items.push(w);
        if (items.length > limit) break;
      }
      const last = page.items[page.items.length - 1];
      if (items.length > limit || !page.hasMore || last === undefined) break;
      cursor = last.id;
    }
    return this.listOf({ items: items.slice(0, limit), hasMore: items.length > limit });
  }

  async get(actor: Actor, id: number): Promise<WebhookView> {
    const w = await this.authorized(actor, id, 'reading');
    return webhookView(w, this.now());
  }

  /** Creates an endpoint of `namespace` (null: global) with a new secret, returned here only. */
  async create(actor: Actor, namespace: string | null, input: WebhookInput): Promise<WebhookWithSecret> {
    if (namespace === null) {
      await this.admin.requireSystem(actor, 'creating global webhooks', 'webhook.create', null);
    } else {
      checkNamespaceName(namespace, 'namespace');
      await this.admin.requireNamespaceAdmin(
        actor,
        namespace,
        'creating webhooks of namespace',
        'webhook.create',
      );
    }
    const name = checkWebhookName(input.name);
    const url = await this.checkUrl(input.url);
    const format = checkFormat(input.format ?? 'distribution');
    const events = checkEvents(input.events ?? []);
    const repositoryGlob = checkGlob(input.repositoryGlob ?? '**', 'repositoryGlob');
    const tagGlob = checkGlob(input.tagGlob ?? '*', 'tagGlob');
    const includePulls = input.includePulls === true;
    const headers = checkHeaders(input.headers ?? {});
    checkPulls(events, includePulls);
    const secret = this.generateSecret();
    const w = await this.deps.store
      .create({
        name,
        namespace,
        url,
        format,
        events,
        repositoryGlob,
        tagGlob,
        includePulls,
        headers,
        secret,
        createdBy: actor.principal?.name ?? null,
      })
      .catch((e: unknown) => fromStore(e));
    await recordAction(this.audit, actor, 'webhook.create', namespace, {
      id: w.id,
      name,
      url: auditUrl(url),
      format,
      events,
      repositoryGlob,
      tagGlob,
      includePulls,
      headers: Object.keys(headers),
    });
    return { ...webhookView(w, this.now()), secret };
  }

  /** Changes what is given; nothing given changes nothing (and is not audited). */
  async update(actor: Actor, id: number, changes: WebhookChanges): Promise<WebhookView> {
    const before = await this.authorized(actor, id, 'changing', 'webhook.update');
    const patch: {
      -readonly [K in keyof WebhookPatch]: WebhookPatch[K];
    } = {};
    if (changes.url !== undefined) patch.url = await this.checkUrl(changes.url);
    if (changes.format !== undefined) patch.format = checkFormat(changes.format);
    if (changes.events !== undefined) patch.events = checkEvents(changes.events);
    if (changes.repositoryGlob !== undefined)
      patch.repositoryGlob = checkGlob(changes.repositoryGlob, 'repositoryGlob');
    if (changes.tagGlob !== undefined) patch.tagGlob = checkGlob(changes.tagGlob, 'tagGlob');
    if (changes.includePulls !== undefined) patch.includePulls = changes.includePulls;
    if (changes.headers !== undefined) {
      const given: Record<string, string> = {};
      for (const [name, value] of Object.entries(changes.headers)) {
        if (value !== MASKED_VALUE) given[name] = value;
        else {
          const kept = Object.entries(before.headers).find(([n]) => n.toLowerCase() === name.toLowerCase());
          if (kept === undefined)
            throw invalid(`the header ${name} has no stored value to keep; give its value`, 'headers');
          given[name] = kept[1];
        }
      }
      patch.headers = checkHeaders(given);
    }
    if (changes.enabled !== undefined) {
      patch.enabled = changes.enabled;
      patch.disabledReason = changes.enabled ? null : `disabled by ${actor.principal?.name ?? 'the system'}`;
    }
    checkPulls(patch.events ?? before.events, patch.includePulls ?? before.includePulls);
    if (Object.keys(patch).length === 0) return webhookView(before, this.now());
    const after = await this.deps.store.update(id, patch);
    if (!after) throw notFound(`webhook ${id} does not exist`);
    const { headers, url, disabledReason, ...rest } = patch;
    void disabledReason;
    await recordAction(this.audit, actor, 'webhook.update', before.namespace, {
      id,
      name: before.name,
      changes: {
        ...rest,
        ...(url !== undefined ? { url: auditUrl(url) } : {}),
        ...(headers !== undefined ? { headers: Object.keys(headers) } : {}),
      },
    });
    return webhookView(after, this.now());
  }

  async enable(actor: Actor, id: number, enabled: boolean): Promise<WebhookView> {
    return this.update(actor, id, { enabled });
  }

  /** Deletes the endpoint with its delivery log. */
  async delete(actor: Actor, id: number): Promise<void> {
    const w = await this.authorized(actor, id, 'deleting', 'webhook.delete');
    if (!(await this.deps.store.delete(id))) throw notFound(`webhook ${id} does not exist`);
    await recordAction(this.audit, actor, 'webhook.delete', w.namespace, { id, name: w.name });
  }

  /**
   * Replaces the secret with a new one, returned here only. Deliveries are signed with both until
   * `previousSecretUntil` (now + `webhooks.secretGracePeriod`), so receivers can switch without losing one.
   */
  async rotateSecret(actor: Actor, id: number): Promise<WebhookWithSecret & { previousSecretUntil: Date }> {
    const w = await this.authorized(actor, id, 'rotating the secret of', 'webhook.rotate-secret');
    const now = this.now();
    const until = new Date(now + this.deps.secretGracePeriod);
    const secret = this.generateSecret();
    const after = await this.deps.store.rotateSecret(id, secret, until);
    if (!after) throw notFound(`webhook ${id} does not exist`);
    await recordAction(this.audit, actor, 'webhook.rotate-secret', w.namespace, {
      id,
      name: w.name,
      previousSecretUntil: until.toISOString(),
    });
    return { ...webhookView(after, now), secret, previousSecretUntil: until };
  }

  /** The endpoint's delivery attempts, newest first; the cursor is an attempt id (older ones follow it). */
  async listDeliveries(
    actor: Actor,
    id: number,
    query: DeliveryQuery = {},
  ): Promise<ListResult<DeliveryView>> {
    await this.authorized(actor, id, 'reading the deliveries of');
    const limit = query.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(query.limit, MAX_PAGE_SIZE);
    let before: number | undefined;
    if (query.after !== undefined && query.after !== '') {
      if (!/^\d{1,15}$/.test(query.after)) throw invalid('after must be a delivery id', 'after');
      before = Number(query.after);
    }
    let outcome: DeliveryOutcome | undefined;
    if (query.outcome !== undefined && query.outcome !== '') {
      if (!(DELIVERY_OUTCOMES as readonly string[]).includes(query.outcome))
        throw invalid(
          `invalid outcome ${quote(query.outcome)}: one of ${DELIVERY_OUTCOMES.join(', ')}`,
          'outcome',
        );
      outcome = query.outcome as DeliveryOutcome;
    }
    const page = await this.deps.store.listDeliveries(id, {
      limit,
      ...(before !== undefined ? { before } : {}),
      ...(outcome !== undefined ? { outcome } : {}),
    });
    const last = page.items[page.items.length - 1];
    return { items: page.items.map(deliveryView), next: page.hasMore && last ? String(last.id) : null };
  }

  /** Moves a dead delivery (its job) back to the queue. Only `dead` attempts can be redelivered. */
  async redeliver(
    actor: Actor,
    id: number,
    deliveryId: number,
  ): Promise<{ webhookId: number; deliveryId: number; jobId: number }> {
    positiveId(deliveryId, 'delivery id', 'deliveryId');
    const w = await this.authorized(actor, id, 'redelivering to', 'webhook.redeliver');
    // The log is read newest first below an id: the first attempt at or below `deliveryId` is it, if it exists.
    const page = await this.deps.store.listDeliveries(id, { limit: 1, before: deliveryId + 1 });
    const d = page.items[0];
    if (d === undefined || d.id !== deliveryId)
      throw notFound(`delivery ${deliveryId} of webhook ${id} does not exist`);
    if (d.outcome !== 'dead')
      throw conflict(`delivery ${deliveryId} is ${d.outcome}: only dead deliveries can be redelivered`);
    if (d.jobId === null || !(await this.deps.redeliver(d.jobId)))
      throw conflict(
        `delivery ${deliveryId} cannot be redelivered: its job is no longer dead (redelivered or pruned)`,
      );
    await recordAction(this.audit, actor, 'webhook.redeliver', w.namespace, {
      id,
      name: w.name,
      deliveryId,
      jobId: d.jobId,
      eventId: d.eventId,
    });
    return { webhookId: id, deliveryId, jobId: d.jobId };
  }

  /** Enqueues a test event for the endpoint (also when it is disabled, to check it before enabling it). */
  async sendTest(actor: Actor, id: number): Promise<{ webhookId: number }> {
    const w = await this.authorized(actor, id, 'sending a test event to', 'webhook.test');
    await this.deps.sendTest(w, actor);
    await recordAction(this.audit, actor, 'webhook.test', w.namespace, { id, name: w.name });
    return { webhookId: id };
  }

  // --- helpers -------------------------------------------------------------------------------------

  private listOf(page: { items: WebhookRecord[]; hasMore: boolean }): ListResult<WebhookView> {
    const now = this.now();
    const last = page.items[page.items.length - 1];
    return {
      items: page.items.map((w) => webhookView(w, now)),
      next: page.hasMore && last !== undefined ? String(last.id) : null,
    };
  }

  /** The endpoint, when it exists (404) and `actor` administers its scope (403, audited with `action`). */
  private async authorized(
    actor: Actor,
    id: number,
    what: string,
    action: string | null = null,
  ): Promise<WebhookRecord> {
    positiveId(id, 'webhook id', 'id');
    const w = await this.deps.store.get(id);
    if (!w) throw notFound(`webhook ${id} does not exist`);
    if (w.namespace === null) await this.admin.requireSystem(actor, `${what} global webhooks`, action, null);
    else
      await this.admin.requireNamespaceAdmin(actor, w.namespace, `${what} the webhooks of namespace`, action);
    return w;
  }

  private async checkUrl(value: string): Promise<string> {
    const url = checkWebhookUrl(value);
    try {
      await this.deps.checkUrl(url);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw invalid(
        `the URL is refused: ${why} (endpoints on loopback, private, link-local or cloud metadata addresses need their host in webhooks.allowedHosts)`,
        'url',
      );
    }
    return value;
  }
}
