/**
 * The administration of the pull-through cache's upstreams, shared by the HTTP API (`http/admin/upstreams.ts`)
 * and the CLI (`berth upstreams`): list, show, add, change, remove, and check that one answers.
 *
 * Who may: system administrators and the system (the CLI). Upstreams in the configuration file are listed
 * (`source: config`) but cannot be changed here. A password is sealed before it is stored and never shown: views
 * say only whether one is set. Changes are audited (`upstream.create`, `upstream.update`, `upstream.delete`).
 */
import type { AuditLog } from '../auth/audit.ts';
import { ConflictError } from '../metadata/auth-store.ts';
import type { StoredUpstream, UpstreamStore } from '../metadata/upstream-store.ts';
import { applyEviction } from '../proxy/eviction.ts';
import type { UpstreamDirectory } from '../proxy/upstream-directory.ts';
import {
  namespaceSchema,
  settingsDocument,
  type Upstream,
  type UpstreamSettings,
  upstreamSettingsSchema,
} from '../proxy/upstream.ts';
import type { RegistryClient } from '../remote/registry-client.ts';
import { RemoteError } from '../remote/registry-client.ts';
import type { SecretBox } from '../remote/secret-box.ts';
import { SecretKeyMissingError } from '../remote/secret-box.ts';
import type { RetentionService } from '../lifecycle/retention.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { recordAction } from './audit-action.ts';
import { schemaProblem } from '../util/schema-problem.ts';
import { conflict, invalid, notFound } from './errors.ts';

/** An upstream as the API and the CLI show it (never its password). */
export interface UpstreamView {
  readonly name: string;
  readonly namespace: string;
  readonly source: 'config' | 'api';
  readonly username: string | null;
  readonly hasPassword: boolean;
  readonly settings: Record<string, unknown>;
  readonly createdBy: string | null;
  readonly createdAt: Date | null;
  readonly updatedAt: Date | null;
}

/** A new upstream: settings, with its name, namespace and credentials. */
export interface UpstreamInput {
  readonly name: string;
  readonly namespace: string;
  readonly username?: string | null | undefined;
  readonly password?: string | null | undefined;
  /** Validated by `upstreamSettingsSchema`; durations as `5m`, `30s` or seconds. */
  readonly settings: Record<string, unknown>;
}

/** A change: settings given replace those fields; `password` null clears it, absent keeps it. */
export interface UpstreamChange {
  readonly username?: string | null | undefined;
  readonly password?: string | null | undefined;
  readonly settings?: Record<string, unknown> | undefined;
}

/** The answer of an upstream check. */
export interface UpstreamCheck {
  readonly ok: boolean;
  /** Why not, when not. */
  readonly error: string | null;
  readonly ms: number;
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface UpstreamAdminDeps {
  readonly admin: AdminService;
  readonly audit: AuditLog | null;
  readonly store: UpstreamStore;
  readonly directory: UpstreamDirectory;
  readonly secrets: SecretBox;
  readonly retention: RetentionService | null;
  readonly clientFor: (upstream: Upstream) => RegistryClient;
}

export class UpstreamAdmin {
  constructor(private readonly deps: UpstreamAdminDeps) {}

  /** Every upstream: the configuration's, then the stored ones by name. */
  async list(actor: Actor): Promise<UpstreamView[]> {
    await this.deps.admin.requireSystem(actor, 'listing upstreams');
    return this.#views();
  }

  /** The upstream `name`; not found otherwise. */
  async get(actor: Actor, name: string): Promise<UpstreamView> {
    await this.deps.admin.requireSystem(actor, 'reading upstreams');
    const view = (await this.#views()).find((v) => v.name === name);
    if (!view) throw notFound(`no upstream named ${name}`);
    return view;
  }

  /** Adds an upstream; conflicts on a taken name or an overlapping namespace. */
  async create(actor: Actor, input: UpstreamInput): Promise<UpstreamView> {
    await this.deps.admin.requireSystem(actor, 'adding upstreams', 'upstream.create', input.name);
    if (!NAME_RE.test(input.name)) {
      throw invalid('name: lowercase letters, digits, `.`, `_` and `-`, at most 64 characters', 'name');
    }
    const namespace = namespaceSchema.safeParse(input.namespace);
    if (!namespace.success) throw invalid(`namespace: ${namespace.error.issues[0]?.message}`, 'namespace');
    const settings = parseSettings(input.settings);
    await this.#checkPlacement(input.name, input.namespace, settings);
    const { username, sealedPassword } = await this.#credentials(
      input.username ?? null,
      input.password ?? null,
    );
    let stored: StoredUpstream;
    try {
      stored = await this.deps.store.create({
        name: input.name,
        namespace: input.namespace,
        settings: settingsDocument(settings),
        username,
        sealedPassword,
        createdBy: actor.principal?.name ?? null,
      });
    } catch (e) {
      if (e instanceof ConflictError) throw conflict(e.message);
      throw e;
    }
    this.deps.directory.invalidate();
    await this.#evict(actor, input.namespace, settings);
    await recordAction(this.deps.audit, actor, 'upstream.create', input.name, {
      namespace: input.namespace,
      urls: settings.urls,
    });
    return storedView(stored, settings);
  }

  /** Changes a stored upstream. */
  async update(actor: Actor, name: string, change: UpstreamChange): Promise<UpstreamView> {
    await this.deps.admin.requireSystem(actor, 'changing upstreams', 'upstream.update', name);
    this.#notConfigured(name);
    const current = await this.deps.store.get(name);
    if (!current) throw notFound(`no upstream named ${name}`);
    const merged = { ...(current.settings as Record<string, unknown>), ...(change.settings ?? {}) };
    const settings = parseSettings(merged);
    await this.#checkPlacement(name, current.namespace, settings);
    const username = change.username !== undefined ? change.username : current.username;
    let sealedPassword: string | null | undefined;
    if (change.password === null || username === null) sealedPassword = null;
    else if (change.password !== undefined) {
      sealedPassword = (await this.#credentials(username, change.password)).sealedPassword;
    }
    const updated = await this.deps.store.update(name, {
      settings: settingsDocument(settings),
      username,
      ...(sealedPassword !== undefined ? { sealedPassword } : {}),
    });
    if (!updated) throw notFound(`no upstream named ${name}`);
    this.deps.directory.invalidate();
    await this.#evict(actor, current.namespace, settings);
    await recordAction(this.deps.audit, actor, 'upstream.update', name, {
      fields: [
        ...Object.keys(change.settings ?? {}),
        ...(change.username !== undefined ? ['username'] : []),
        ...(change.password !== undefined ? ['password'] : []),
      ],
    });
    return storedView(updated, settings);
  }

  /** Removes a stored upstream; what it cached stays (as local, read-write repositories). */
  async delete(actor: Actor, name: string): Promise<void> {
    await this.deps.admin.requireSystem(actor, 'removing upstreams', 'upstream.delete', name);
    this.#notConfigured(name);
    if (!(await this.deps.store.delete(name))) throw notFound(`no upstream named ${name}`);
    this.deps.directory.invalidate();
    await recordAction(this.deps.audit, actor, 'upstream.delete', name, {});
  }

  /** Asks the upstream for `/v2/` (authenticating as configured). */
  async check(actor: Actor, name: string): Promise<UpstreamCheck> {
    await this.deps.admin.requireSystem(actor, 'checking upstreams');
    const upstream = (await this.deps.directory.all()).find((u) => u.name === name);
    if (!upstream) throw notFound(`no upstream named ${name}`);
    const started = performance.now();
    try {
      await this.deps.clientFor(upstream).ping({ signal: AbortSignal.timeout(upstream.settings.timeout) });
      return { ok: true, error: null, ms: Math.round(performance.now() - started) };
    } catch (e) {
      const error = e instanceof RemoteError || e instanceof Error ? e.message : String(e);
      return { ok: false, error, ms: Math.round(performance.now() - started) };
    }
  }

  async #views(): Promise<UpstreamView[]> {
    const configured = this.deps.directory.configured.map((u): UpstreamView => ({
      name: u.name,
      namespace: u.namespace,
      source: 'config',
      username: u.credentials?.username ?? null,
      hasPassword: (u.credentials?.password ?? '') !== '',
      settings: settingsDocument(u.settings),
      createdBy: null,
      createdAt: null,
      updatedAt: null,
    }));
    const stored = (await this.deps.store.list()).map((row) => {
      const parsed = upstreamSettingsSchema.safeParse(row.settings);
      return storedView(row, parsed.success ? parsed.data : null);
    });
    return [...configured, ...stored];
  }

  #notConfigured(name: string): void {
    if (this.deps.directory.configured.some((u) => u.name === name)) {
      throw conflict(`upstream ${name} is defined in the configuration file: change it there`);
    }
  }

  /** Names and namespaces are unique, namespaces do not nest, and at most one upstream is the mirror. */
  async #checkPlacement(name: string, namespace: string, settings: UpstreamSettings): Promise<void> {
    for (const other of await this.deps.directory.all()) {
      if (other.name === name && other.source === 'config') {
        throw conflict(`upstream ${name} is defined in the configuration file`);
      }
      if (other.name === name) continue;
      const nested =
        other.namespace === namespace ||
        other.namespace.startsWith(`${namespace}/`) ||
        namespace.startsWith(`${other.namespace}/`);
      if (nested) {
        throw conflict(`namespace ${namespace} overlaps ${other.namespace} of upstream ${other.name}`);
      }
      if (settings.mirror && other.settings.mirror) {
        throw conflict(`upstream ${other.name} is the mirror already: only one upstream may be`);
      }
    }
  }

  async #credentials(
    username: string | null,
    password: string | null,
  ): Promise<{ username: string | null; sealedPassword: string | null }> {
    if (username === null) {
      if (password !== null) throw invalid('a password needs a username', 'password');
      return { username: null, sealedPassword: null };
    }
    if (username.length === 0 || username.length > 256)
      throw invalid('username: 1 to 256 characters', 'username');
    if (password === null) return { username, sealedPassword: null };
    try {
      return { username, sealedPassword: await this.deps.secrets.seal(password) };
    } catch (e) {
      if (e instanceof SecretKeyMissingError) throw invalid(e.message, 'password');
      throw e;
    }
  }

  async #evict(actor: Actor, namespace: string, settings: UpstreamSettings): Promise<void> {
    if (this.deps.retention) {
      await applyEviction(
        this.deps.retention,
        namespace,
        settings.evictAfterDays,
        actor.principal?.name ?? null,
      );
    }
  }
}

function parseSettings(value: unknown): UpstreamSettings {
  const result = upstreamSettingsSchema.safeParse(value);
  if (result.success) return result.data;
  const { message, field } = schemaProblem(result.error, 'settings');
  throw invalid(message, field);
}

function storedView(row: StoredUpstream, settings: UpstreamSettings | null): UpstreamView {
  return {
    name: row.name,
    namespace: row.namespace,
    source: 'api',
    username: row.username,
    hasPassword: row.sealedPassword !== null,
    settings: settings ? settingsDocument(settings) : (row.settings as Record<string, unknown>),
    createdBy: row.createdBy,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}
