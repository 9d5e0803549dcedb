/**
 * The administration of immutable tag rules, shared by the HTTP API (`http/admin/immutable-tags.ts`) and the CLI
 * (`berth immutable-tags`): list, add and remove the rules of a namespace.
 *
 * Who may: the system (the CLI), system administrators, and users with the `admin` role on the namespace (robots
 * never, see `admin-service.ts`); `AdminService` decides. The namespace need not have a record (as webhooks): a
 * system administrator may protect the tags of any namespace. Changes are audited (`immutable-tag.add`,
 * `immutable-tag.remove`, target: the namespace), refusals too (`success: false`).
 */
import type { AuditLog } from '../auth/audit.ts';
import { recordAction } from './audit-action.ts';
import type { ImmutableTags } from '../lifecycle/immutable-tags.ts';
import { ConflictError } from '../metadata/auth-store.ts';
import type { ImmutableTagRuleRecord } from '../metadata/immutable-tag-store.ts';
import type { Actor, AdminService, PageInput } from './admin-service.ts';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './admin-service.ts';
import { conflict, invalid, notFound } from './errors.ts';
import { checkLimit, checkNamespaceName, checkPattern } from './validation.ts';
import type { ListResult } from './views.ts';

/** A rule as the admin API and the CLI show it. */
export interface ImmutableTagRuleView {
  readonly id: number;
  readonly namespace: string;
  /** Glob on the repository name after the namespace. */
  readonly repositoryGlob: string;
  /** Glob on the tag. */
  readonly tagGlob: string;
  readonly createdBy: string | null;
  readonly createdAt: Date;
}

export interface ImmutableTagRuleInput {
  /** Default `**`: every repository of the namespace. */
  readonly repositoryGlob?: string | undefined;
  readonly tagGlob: string;
}

const MAX_TAG_GLOB_LENGTH = 255;
/** The characters of a tag, with the glob's `*` and `?`. */
const TAG_GLOB_RE = /^[a-zA-Z0-9._*?-]+$/;

export function immutableTagRuleView(r: ImmutableTagRuleRecord): ImmutableTagRuleView {
  return {
    id: r.id,
    namespace: r.namespace,
    repositoryGlob: r.repositoryGlob,
    tagGlob: r.tagGlob,
    createdBy: r.createdBy,
    createdAt: r.createdAt,
  };
}

export function checkTagGlob(value: string, field = 'tagGlob'): string {
  if (value.length === 0 || value.length > MAX_TAG_GLOB_LENGTH || !TAG_GLOB_RE.test(value)) {
    throw invalid(
      `invalid ${field} ${JSON.stringify(value.slice(0, 80))}: a glob of letters, digits and . _ - * ? (at most ${MAX_TAG_GLOB_LENGTH} characters)`,
      field,
    );
  }
  return value;
}

export class ImmutableTagAdmin {
  /**
   * @param admin decides who administers a namespace (and audits refusals).
   * @param audit where changes are recorded.
   * @param rules the rules, whose changes apply in this process at once.
   */
  constructor(
    private readonly admin: AdminService,
    private readonly audit: AuditLog,
    private readonly rules: ImmutableTags,
  ) {}

  /** The rules of `namespace` ordered by id (the cursor is an id). */
  async list(
    actor: Actor,
    namespace: string,
    page: PageInput = {},
  ): Promise<ListResult<ImmutableTagRuleView>> {
    checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(actor, namespace, 'listing the immutable tags of namespace');
    const limit = page.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(page.limit, MAX_PAGE_SIZE);
    let after = 0;
    if (page.after !== undefined && page.after !== '') {
      if (!/^\d{1,15}$/.test(page.after)) throw invalid('after must be a rule id', 'after');
      after = Number(page.after);
    }
    const rest = (await this.rules.list(namespace)).filter((r) => r.id > after);
    const items = rest.slice(0, limit).map(immutableTagRuleView);
    const last = items[items.length - 1];
    return { items, next: rest.length > limit && last !== undefined ? String(last.id) : null };
  }

  /** Adds a rule to `namespace`; conflict when it has the same one. */
  async add(actor: Actor, namespace: string, input: ImmutableTagRuleInput): Promise<ImmutableTagRuleView> {
    checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      namespace,
      'changing the immutable tags of namespace',
      'immutable-tag.add',
    );
    const repositoryGlob = checkPattern(input.repositoryGlob ?? '**', 'repositoryGlob');
    const tagGlob = checkTagGlob(input.tagGlob);
    const rule = await this.rules
      .add({ namespace, repositoryGlob, tagGlob, createdBy: actor.principal?.name ?? null })
      .catch((e: unknown) => {
        if (e instanceof ConflictError) throw conflict(e.message);
        throw e;
      });
    await recordAction(this.audit, actor, 'immutable-tag.add', namespace, {
      id: rule.id,
      repositoryGlob,
      tagGlob,
    });
    return immutableTagRuleView(rule);
  }

  /** Removes rule `id` of `namespace`; not-found when that namespace has no such rule. */
  async remove(actor: Actor, namespace: string, id: number): Promise<ImmutableTagRuleView> {
    checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      namespace,
      'changing the immutable tags of namespace',
      'immutable-tag.remove',
    );
    if (!Number.isSafeInteger(id) || id < 1)
      throw invalid('the rule id must be a positive whole number', 'id');
    const rule = await this.rules.remove(namespace, id);
    if (rule === null) throw notFound(`immutable tag rule ${id} does not exist in namespace ${namespace}`);
    await recordAction(this.audit, actor, 'immutable-tag.remove', namespace, {
      id,
      repositoryGlob: rule.repositoryGlob,
      tagGlob: rule.tagGlob,
    });
    return immutableTagRuleView(rule);
  }
}
