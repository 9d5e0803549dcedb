/**
 * Administration of replication (system administrators only), shared by the HTTP API
 * (`http/admin/replication.ts`) and the CLI (`cli/admin/replication.ts`): remote registries, policies, running a
 * policy, and the executions with their tasks, retry and cancel.
 *
 * Credentials are sealed (`remote/secret-box.ts`) before they reach the database and are never returned: views say
 * `hasCredentials` and the username. Every change is audited (`replication.registry.create|update|delete`,
 * `replication.policy.create|update|delete`, `replication.run`, `replication.retry`, `replication.cancel`), never
 * with a password.
 */
import type { AuditLog } from '../auth/audit.ts';
import { ConflictError } from '../metadata/auth-store.ts';
import type {
  ExecutionRecord,
  NewReplicationPolicy,
  RemoteRegistryRecord,
  ReplicationPolicyRecord,
  ReplicationStore,
  TaskRecord,
} from '../metadata/replication-store.ts';
import { slotClock } from '../jobs/schedule.ts';
import type { ReplicationService } from '../replication/service.ts';
import type { SecretBox } from '../remote/secret-box.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './admin-service.ts';
import { recordAction } from './audit-action.ts';
import { conflict, invalid, notFound } from './errors.ts';
import { checkLimit, isComponent } from './validation.ts';
import type { ListResult } from './views.ts';

/** A remote registry as the API shows it: never its password. */
export interface RemoteRegistryView {
  readonly id: number;
  readonly name: string;
  readonly url: string;
  readonly username: string | null;
  readonly hasCredentials: boolean;
  readonly caBundle: string | null;
  readonly insecure: boolean;
  readonly concurrency: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export function registryView(r: RemoteRegistryRecord): RemoteRegistryView {
  return {
    id: r.id,
    name: r.name,
    url: r.url,
    username: r.username,
    hasCredentials: r.sealedPassword !== null,
    caBundle: r.caBundle,
    insecure: r.insecure,
    concurrency: r.concurrency,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

export type PolicyView = Omit<ReplicationPolicyRecord, 'registryId'> & {
  readonly registry: { readonly id: number; readonly name: string };
};

export type ExecutionView = ExecutionRecord;

export interface ExecutionDetailView extends ExecutionView {
  readonly tasks: ListResult<TaskRecord>;
}

export interface RegistryInput {
  name?: unknown;
  url?: unknown;
  username?: unknown;
  password?: unknown;
  caBundle?: unknown;
  insecure?: unknown;
  concurrency?: unknown;
}

export interface PolicyInput {
  name?: unknown;
  registry?: unknown;
  direction?: unknown;
  repositories?: unknown;
  excludeRepositories?: unknown;
  tags?: unknown;
  excludeTags?: unknown;
  rewrite?: unknown;
  trigger?: unknown;
  schedule?: unknown;
  replicateDeletions?: unknown;
  bandwidthLimit?: unknown;
  enabled?: unknown;
}

export class ReplicationAdmin {
  constructor(
    private readonly admin: AdminService,
    private readonly replication: ReplicationService,
    private readonly audit: AuditLog | null,
    private readonly defaultConcurrency: number,
  ) {}

  private get store(): ReplicationStore {
    return this.replication.store;
  }

  private get secrets(): SecretBox {
    return this.replication.secrets;
  }

  // --- remote registries ----------------------------------------------------------------------------------

  async listRegistries(actor: Actor): Promise<ListResult<RemoteRegistryView>> {
    await this.admin.requireSystem(actor, 'reading replication registries');
    return { items: (await this.store.listRegistries()).map(registryView), next: null };
  }

  async getRegistry(actor: Actor, ref: string): Promise<RemoteRegistryView> {
    await this.admin.requireSystem(actor, 'reading replication registries');
    return registryView(await this.findRegistry(ref));
  }

  async createRegistry(actor: Actor, input: RegistryInput): Promise<RemoteRegistryView> {
    await this.admin.requireSystem(actor, 'adding replication registries', 'replication.registry.create');
    const name = checkName(input.name, 'name');
    const url = checkUrl(input.url);
    const { username, password } = checkCredentials(input.username, input.password);
    try {
      const r = await this.store.createRegistry({
        name,
        url,
        username,
        sealedPassword: password === null ? null : await this.secrets.seal(password),
        caBundle: optionalString(input.caBundle, 'caBundle'),
        insecure: optionalBool(input.insecure, 'insecure') ?? false,
        concurrency: checkConcurrency(input.concurrency) ?? this.defaultConcurrency,
      });
      await recordAction(this.audit, actor, 'replication.registry.create', name, {
        url,
        username,
        hasCredentials: password !== null,
      });
      return registryView(r);
    } catch (e) {
      if (e instanceof ConflictError) throw conflict(e.message);
      throw e;
    }
  }

  async updateRegistry(actor: Actor, ref: string, input: RegistryInput): Promise<RemoteRegistryView> {
    await this.admin.requireSystem(actor, 'changing replication registries', 'replication.registry.update');
    const current = await this.findRegistry(ref);
    const patch: Record<string, unknown> = {};
    if (input.name !== undefined) patch.name = checkName(input.name, 'name');
    if (input.url !== undefined) patch.url = checkUrl(input.url);
    if (input.username !== undefined || input.password !== undefined) {
      const { username, password } = checkCredentials(
        input.username === undefined ? current.username : input.username,
        input.password === undefined ? undefined : input.password,
      );
      patch.username = username;
      if (input.password !== undefined)
        patch.sealedPassword = password === null ? null : await this.secrets.seal(password);
      else if (username === null) patch.sealedPassword = null;
    }
    if (input.caBundle !== undefined) patch.caBundle = optionalString(input.caBundle, 'caBundle');
    if (input.insecure !== undefined) patch.insecure = optionalBool(input.insecure, 'insecure') ?? false;
    if (input.concurrency !== undefined)
      patch.concurrency = checkConcurrency(input.concurrency) ?? this.defaultConcurrency;
    try {
      const r = await this.store.updateRegistry(current.id, patch);
      if (r === null) throw notFound(`remote registry ${ref} does not exist`);
      await recordAction(this.audit, actor, 'replication.registry.update', r.name, {
        fields: Object.keys(patch).map((k) => (k === 'sealedPassword' ? 'password' : k)),
      });
      return registryView(r);
    } catch (e) {
      if (e instanceof ConflictError) throw conflict(e.message);
      throw e;
    }
  }

  async deleteRegistry(actor: Actor, ref: string): Promise<void> {
    await this.admin.requireSystem(actor, 'removing replication registries', 'replication.registry.delete');
    const current = await this.findRegistry(ref);
    try {
      await this.store.deleteRegistry(current.id);
    } catch (e) {
      if (e instanceof ConflictError) throw conflict(e.message);
      throw e;
    }
    await recordAction(this.audit, actor, 'replication.registry.delete', current.name, {});
  }

  private async findRegistry(ref: string): Promise<RemoteRegistryRecord> {
    const r = /^[1-9]\d{0,14}$/.test(ref)
      ? await this.store.getRegistry(Number(ref))
      : await this.store.getRegistryByName(ref);
    if (r === null) throw notFound(`remote registry ${ref} does not exist`);
    return r;
  }

  // --- policies ---------------------------------------------------------------------------------------------

  async listPolicies(actor: Actor): Promise<ListResult<PolicyView>> {
    await this.admin.requireSystem(actor, 'reading replication policies');
    const names = new Map((await this.store.listRegistries()).map((r) => [r.id, r.name]));
    return {
      items: (await this.store.listPolicies()).map((p) => policyView(p, names.get(p.registryId) ?? '')),
      next: null,
    };
  }

  async getPolicy(actor: Actor, ref: string): Promise<PolicyView> {
    await this.admin.requireSystem(actor, 'reading replication policies');
    const p = await this.findPolicy(ref);
    return policyView(p, (await this.store.getRegistry(p.registryId))?.name ?? '');
  }

  async createPolicy(actor: Actor, input: PolicyInput): Promise<PolicyView> {
    await this.admin.requireSystem(actor, 'adding replication policies', 'replication.policy.create');
    if (input.registry === undefined)
      throw invalid('registry is required (a remote registry id or name)', 'registry');
    const registry = await this.registryOf(input.registry);
    const policy = checkPolicy(
      {
        name: checkName(input.name, 'name'),
        registryId: registry.id,
        direction: 'push',
        repositories: [],
        excludeRepositories: [],
        tags: [],
        excludeTags: [],
        rewrite: { stripPrefix: '', addPrefix: '' },
        trigger: 'manual',
        schedule: null,
        replicateDeletions: false,
        bandwidthLimit: null,
        enabled: true,
      },
      input,
    );
    try {
      const p = await this.store.createPolicy(policy);
      await recordAction(this.audit, actor, 'replication.policy.create', p.name, {
        registry: registry.name,
        direction: p.direction,
        trigger: p.trigger,
      });
      return policyView(p, registry.name);
    } catch (e) {
      if (e instanceof ConflictError) throw conflict(e.message);
      throw e;
    }
  }

  async updatePolicy(actor: Actor, ref: string, input: PolicyInput): Promise<PolicyView> {
    await this.admin.requireSystem(actor, 'changing replication policies', 'replication.policy.update');
    const current = await this.findPolicy(ref);
    const registry =
      input.registry === undefined
        ? await this.store.getRegistry(current.registryId)
        : await this.registryOf(input.registry);
    const next = checkPolicy(
      {
        ...current,
        ...(input.name !== undefined ? { name: checkName(input.name, 'name') } : {}),
        registryId: registry?.id ?? current.registryId,
      },
      input,
    );
    try {
      const p = await this.store.updatePolicy(current.id, next);
      if (p === null) throw notFound(`replication policy ${ref} does not exist`);
      await recordAction(this.audit, actor, 'replication.policy.update', p.name, {
        fields: Object.keys(input).filter((k) => (input as Record<string, unknown>)[k] !== undefined),
      });
      return policyView(p, registry?.name ?? '');
    } catch (e) {
      if (e instanceof ConflictError) throw conflict(e.message);
      throw e;
    }
  }

  async deletePolicy(actor: Actor, ref: string): Promise<void> {
    await this.admin.requireSystem(actor, 'removing replication policies', 'replication.policy.delete');
    const p = await this.findPolicy(ref);
    await this.store.deletePolicy(p.id);
    await recordAction(this.audit, actor, 'replication.policy.delete', p.name, {});
  }

  /** Queues an execution of the policy; an instance running background jobs takes it. */
  async run(actor: Actor, ref: string): Promise<ExecutionView> {
    await this.admin.requireSystem(actor, 'running replication policies', 'replication.run');
    const p = await this.findPolicy(ref);
    const id = await this.replication.run(p, {
      trigger: 'manual',
      requestedBy: actor.principal ? `${actor.principal.kind}:${actor.principal.name}` : null,
    });
    if (id === null) throw conflict('the execution could not be created');
    await recordAction(this.audit, actor, 'replication.run', p.name, { execution: id });
    return (await this.store.getExecution(id)) as ExecutionRecord;
  }

  private async findPolicy(ref: string): Promise<ReplicationPolicyRecord> {
    const p = /^[1-9]\d{0,14}$/.test(ref)
      ? await this.store.getPolicy(Number(ref))
      : await this.store.getPolicyByName(ref);
    if (p === null) throw notFound(`replication policy ${ref} does not exist`);
    return p;
  }

  private async registryOf(value: unknown): Promise<RemoteRegistryRecord> {
    const ref = typeof value === 'number' ? String(value) : value;
    if (typeof ref !== 'string' || ref === '')
      throw invalid('registry must be a remote registry id or name', 'registry');
    const r = /^[1-9]\d{0,14}$/.test(ref)
      ? await this.store.getRegistry(Number(ref))
      : await this.store.getRegistryByName(ref);
    if (r === null) throw invalid(`remote registry ${ref} does not exist`, 'registry');
    return r;
  }

  // --- executions -------------------------------------------------------------------------------------------

  async listExecutions(
    actor: Actor,
    input: { policy?: string | undefined; limit?: number | undefined; after?: string | undefined } = {},
  ): Promise<ListResult<ExecutionView>> {
    await this.admin.requireSystem(actor, 'reading replication executions');
    const limit = input.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(input.limit, MAX_PAGE_SIZE);
    const before = cursor(input.after);
    const policyId = input.policy === undefined ? undefined : (await this.findPolicy(input.policy)).id;
    const rows = await this.store.listExecutions({
      limit: limit + 1,
      ...(before !== undefined ? { before } : {}),
      ...(policyId !== undefined ? { policyId } : {}),
    });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, next: rows.length > limit && last ? String(last.id) : null };
  }

  /** The execution with a page of its tasks (in id order; the cursor is a task id). */
  async getExecution(
    actor: Actor,
    id: number,
    page: { limit?: number | undefined; after?: string | undefined } = {},
  ): Promise<ExecutionDetailView> {
    await this.admin.requireSystem(actor, 'reading replication executions');
    const e = await this.findExecution(id);
    const limit = page.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(page.limit, MAX_PAGE_SIZE);
    const after = cursor(page.after);
    const tasks = await this.store.listTasks(e.id, {
      limit: limit + 1,
      ...(after !== undefined ? { after } : {}),
    });
    const items = tasks.slice(0, limit);
    const last = items[items.length - 1];
    return { ...e, tasks: { items, next: tasks.length > limit && last ? String(last.id) : null } };
  }

  async retry(actor: Actor, id: number): Promise<ExecutionView> {
    await this.admin.requireSystem(actor, 'retrying replication executions', 'replication.retry');
    const e = await this.findExecution(id);
    if (!(await this.replication.retry(e.id)))
      throw conflict(`execution ${id} is ${e.state}: only failed or canceled executions are retried`);
    await recordAction(this.audit, actor, 'replication.retry', e.policyName, { execution: id });
    return this.findExecution(id);
  }

  async cancel(actor: Actor, id: number): Promise<ExecutionView> {
    await this.admin.requireSystem(actor, 'canceling replication executions', 'replication.cancel');
    const e = await this.findExecution(id);
    if (!(await this.replication.cancel(e.id)))
      throw conflict(`execution ${id} is ${e.state}: only queued or running executions are canceled`);
    await recordAction(this.audit, actor, 'replication.cancel', e.policyName, { execution: id });
    return this.findExecution(id);
  }

  private async findExecution(id: number): Promise<ExecutionRecord> {
    if (!Number.isSafeInteger(id) || id < 1)
      throw invalid('an execution id is a positive whole number', 'id');
    const e = await this.store.getExecution(id);
    if (e === null) throw notFound(`replication execution ${id} does not exist`);
    return e;
  }
}

function policyView(p: ReplicationPolicyRecord, registryName: string): PolicyView {
  const { registryId, ...rest } = p;
  return { ...rest, registry: { id: registryId, name: registryName } };
}

function cursor(after: string | undefined): number | undefined {
  if (after === undefined || after === '') return undefined;
  if (!/^[1-9]\d{0,14}$/.test(after)) throw invalid('after must be an id', 'after');
  return Number(after);
}

function checkName(value: unknown, field: string): string {
  if (typeof value !== 'string' || !isComponent(value) || value.length > 64)
    throw invalid(
      `${field} must be 1 to 64 lowercase letters, digits and separators (., _, -), starting and ending with a letter or digit`,
      field,
    );
  return value;
}

function checkUrl(value: unknown): string {
  if (typeof value !== 'string') throw invalid('url is required', 'url');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid('url must be an http or https URL', 'url');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalid('url must be an http or https URL', 'url');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '')
    throw invalid('url is the registry base URL: scheme, host and port only (credentials go apart)', 'url');
  return `${url.protocol}//${url.host}`;
}

function checkCredentials(
  username: unknown,
  password: unknown,
): { username: string | null; password: string | null } {
  const u = username === undefined || username === null || username === '' ? null : username;
  const p = password === undefined || password === null || password === '' ? null : password;
  if (u !== null && typeof u !== 'string') throw invalid('username must be a string', 'username');
  if (p !== null && typeof p !== 'string') throw invalid('password must be a string', 'password');
  if (p !== null && u === null) throw invalid('a password needs a username', 'username');
  return { username: u, password: p };
}

function optionalString(value: unknown, field: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw invalid(`${field} must be a string`, field);
  return value;
}

function optionalBool(value: unknown, field: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw invalid(`${field} must be true or false`, field);
  return value;
}

function checkConcurrency(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > 64)
    throw invalid('concurrency must be a whole number from 1 to 64', 'concurrency');
  return value;
}

function globs(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.some((g) => typeof g !== 'string' || g === '' || g.length > 255))
    throw invalid(`${field} must be a list of glob patterns`, field);
  return value as string[];
}

/** `base` with the fields of `input` given, validated as a whole. */
function checkPolicy(base: NewReplicationPolicy, input: PolicyInput): NewReplicationPolicy {
  const p: { -readonly [K in keyof NewReplicationPolicy]: NewReplicationPolicy[K] } = { ...base };
  if (input.direction !== undefined) {
    if (input.direction !== 'push' && input.direction !== 'pull')
      throw invalid('direction must be push or pull', 'direction');
    p.direction = input.direction;
  }
  if (input.repositories !== undefined) p.repositories = globs(input.repositories, 'repositories');
  if (input.excludeRepositories !== undefined)
    p.excludeRepositories = globs(input.excludeRepositories, 'excludeRepositories');
  if (input.tags !== undefined) p.tags = globs(input.tags, 'tags');
  if (input.excludeTags !== undefined) p.excludeTags = globs(input.excludeTags, 'excludeTags');
  if (input.rewrite !== undefined) {
    const r = input.rewrite as { stripPrefix?: unknown; addPrefix?: unknown } | null;
    if (r === null || typeof r !== 'object') throw invalid('rewrite must be an object', 'rewrite');
    const strip = r.stripPrefix ?? '';
    const add = r.addPrefix ?? '';
    if (typeof strip !== 'string' || typeof add !== 'string' || !/^[a-z0-9._\-/]*$/.test(`${strip}${add}`))
      throw invalid('rewrite.stripPrefix and rewrite.addPrefix must be repository name prefixes', 'rewrite');
    p.rewrite = { stripPrefix: strip, addPrefix: add };
  }
  if (input.trigger !== undefined) {
    if (input.trigger !== 'manual' && input.trigger !== 'schedule' && input.trigger !== 'event')
      throw invalid('trigger must be manual, schedule or event', 'trigger');
    p.trigger = input.trigger;
  }
  if (input.schedule !== undefined) p.schedule = optionalString(input.schedule, 'schedule');
  if (p.trigger === 'schedule') {
    if (p.schedule === null) throw invalid('a scheduled policy needs a schedule (cron, UTC)', 'schedule');
    try {
      slotClock(p.schedule);
    } catch (e) {
      throw invalid((e as Error).message, 'schedule');
    }
  }
  if (input.replicateDeletions !== undefined)
    p.replicateDeletions = optionalBool(input.replicateDeletions, 'replicateDeletions') ?? false;
  if (input.bandwidthLimit !== undefined) {
    const b = input.bandwidthLimit;
    if (b !== null && (typeof b !== 'number' || !Number.isSafeInteger(b) || b < 1024))
      throw invalid('bandwidthLimit is bytes per second (1024 or more), or null', 'bandwidthLimit');
    p.bandwidthLimit = b;
  }
  if (input.enabled !== undefined) p.enabled = optionalBool(input.enabled, 'enabled') ?? true;
  if (p.trigger === 'event' && p.direction === 'pull')
    throw invalid('event triggers replicate local pushes: only push policies have them', 'trigger');
  return p;
}
