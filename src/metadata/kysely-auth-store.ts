/**
 * The AuthStore on top of Kysely, for SQLite and PostgreSQL, over the same database as `KyselyMetadataStore`
 * (tables from migration 0002; get one with `KyselyMetadataStore.authStore()`).
 *
 * Uniqueness: creations use `INSERT ... ON CONFLICT DO NOTHING RETURNING`, so a taken name (even one taken by
 * a concurrent transaction a moment earlier) yields no row and becomes a `ConflictError`, never a unique
 * violation. References: memberships and rules look their namespace and principal up inside the transaction
 * that inserts them (on PostgreSQL `FOR SHARE`, so a concurrent delete waits for the insert to commit and then
 * cascades to it), throwing `NotFoundError` when one is missing. On SQLite every transaction is
 * `BEGIN IMMEDIATE` (see `dialects.ts`), which serializes writers.
 *
 * Booleans are stored as 0/1; timestamps as epoch milliseconds.
 */
import { sql } from 'kysely';
import type { Kysely, QueryCreator, RawBuilder, Selectable, SelectQueryBuilder, Transaction } from 'kysely';
import { ConflictError, NotFoundError } from './auth-store.ts';
import type {
  AuditEvent,
  AuditEventInput,
  AuditQuery,
  AuthStore,
  LoginFailureGroup,
  MemberKind,
  MemberRecord,
  NamespaceRecord,
  RefreshTokenRecord,
  RepositoryRuleRecord,
  RobotRecord,
  Role,
  SigningKeyRecord,
  SubjectKind,
  TeamRecord,
  UserRecord,
  Visibility,
} from './auth-store.ts';
import type {
  AuditEventsTable,
  Database,
  Flag,
  NamespacesTable,
  RefreshTokensTable,
  RobotsTable,
  SigningKeysTable,
  SqlDialect,
  TeamsTable,
  UsersTable,
} from './schema.ts';
import type { Page, PageOptions } from './store.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** The id column of `namespace_members` / `repository_rules` that holds a principal of each kind. */
const PRINCIPAL_COLUMN = { user: 'user_id', team: 'team_id', robot: 'robot_id' } as const;

/** The columns a rule is read with (the principal's name is resolved by joins, see `withPrincipalName`). */
interface RuleRow {
  id: number;
  namespace: string;
  pattern: string;
  kind: MemberKind;
  principal: string | null;
  role: Role;
}

interface MemberRow {
  namespace: string;
  kind: MemberKind;
  principal: string | null;
  role: Role;
}

/** An `AuthStore` over a Kysely instance on SQLite or PostgreSQL. It does not own the connection. */
export class KyselyAuthStore implements AuthStore {
  private readonly pg: boolean;

  /**
   * @param db the metadata database, migrated (0002 or later); the caller owns it and closes it.
   * @param dialect which SQL dialect `db` speaks.
   */
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {
    this.pg = dialect === 'postgres';
  }

  // --- users ---------------------------------------------------------------------------------------

  async createUser(user: {
    username: string;
    passwordHash: string | null;
    email?: string | null;
    isAdmin: boolean;
  }): Promise<UserRecord> {
    const now = Date.now();
    const row = await this.db
      .insertInto('users')
      .values({
        username: user.username,
        password_hash: user.passwordHash,
        email: user.email ?? null,
        is_admin: flag(user.isAdmin),
        disabled: 0,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('username').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`user ${user.username} already exists`);
    return toUser(row);
  }

  async getUser(username: string): Promise<UserRecord | null> {
    const row = await this.db
      .selectFrom('users')
      .selectAll()
      .where('username', '=', username)
      .executeTakeFirst();
    return row === undefined ? null : toUser(row);
  }

  async listUsers(options: PageOptions): Promise<Page<UserRecord>> {
    const limit = checkCount('limit', options.limit);
    let query = this.db
      .selectFrom('users')
      .selectAll()
      .orderBy('username')
      .limit(limit + 1);
    if (options.after !== undefined) query = query.where('username', '>', options.after);
    return toPage((await query.execute()).map(toUser), limit);
  }

  async updateUser(
    username: string,
    changes: { passwordHash?: string | null; email?: string | null; isAdmin?: boolean; disabled?: boolean },
  ): Promise<UserRecord | null> {
    const row = await this.db
      .updateTable('users')
      .set({
        password_hash: changes.passwordHash,
        email: changes.email,
        is_admin: changes.isAdmin === undefined ? undefined : flag(changes.isAdmin),
        disabled: changes.disabled === undefined ? undefined : flag(changes.disabled),
        updated_at: Date.now(),
      })
      .where('username', '=', username)
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? null : toUser(row);
  }

  async deleteUser(username: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const deleted = await trx
        .deleteFrom('users')
        .where('username', '=', username)
        .returning('id')
        .executeTakeFirst();
      if (deleted === undefined) return false;
      // ON DELETE CASCADE already removed these; deleting explicitly keeps the contract even without it.
      await trx.deleteFrom('team_members').where('user_id', '=', deleted.id).execute();
      await trx.deleteFrom('namespace_members').where('user_id', '=', deleted.id).execute();
      await trx.deleteFrom('repository_rules').where('user_id', '=', deleted.id).execute();
      await revokeTokensOf(trx, 'user', username, Date.now());
      return true;
    });
  }

  async countAdmins(): Promise<number> {
    const row = await this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('is_admin', '=', 1)
      .where('disabled', '=', 0)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  // --- robots --------------------------------------------------------------------------------------

  async createRobot(robot: {
    name: string;
    description: string;
    secretHash: string;
    expiresAt: Date | null;
    createdBy: string | null;
  }): Promise<RobotRecord> {
    const row = await this.db
      .insertInto('robots')
      .values({
        name: robot.name,
        description: robot.description,
        secret_hash: robot.secretHash,
        expires_at: toMs(robot.expiresAt),
        revoked_at: null,
        created_by: robot.createdBy,
        created_at: Date.now(),
        last_used_at: null,
      })
      .onConflict((oc) => oc.column('name').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`robot ${robot.name} already exists`);
    return toRobot(row);
  }

  async getRobot(name: string): Promise<RobotRecord | null> {
    const row = await this.db.selectFrom('robots').selectAll().where('name', '=', name).executeTakeFirst();
    return row === undefined ? null : toRobot(row);
  }

  async listRobots(options: PageOptions): Promise<Page<RobotRecord>> {
    const limit = checkCount('limit', options.limit);
    let query = this.db
      .selectFrom('robots')
      .selectAll()
      .orderBy('name')
      .limit(limit + 1);
    if (options.after !== undefined) query = query.where('name', '>', options.after);
    return toPage((await query.execute()).map(toRobot), limit);
  }

  async updateRobot(
    name: string,
    changes: { secretHash?: string; expiresAt?: Date | null; revokedAt?: Date | null; description?: string },
  ): Promise<RobotRecord | null> {
    const set = {
      secret_hash: changes.secretHash,
      expires_at: changes.expiresAt === undefined ? undefined : toMs(changes.expiresAt),
      revoked_at: changes.revokedAt === undefined ? undefined : toMs(changes.revokedAt),
      description: changes.description,
    };
    // Nothing to change: an UPDATE needs at least one assignment.
    if (Object.values(set).every((v) => v === undefined)) return this.getRobot(name);
    const row = await this.db
      .updateTable('robots')
      .set(set)
      .where('name', '=', name)
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? null : toRobot(row);
  }

  async touchRobot(name: string, at: Date): Promise<void> {
    const ms = at.getTime();
    // Never moves lastUsedAt backwards (concurrent authentications may finish out of order).
    await this.db
      .updateTable('robots')
      .set({ last_used_at: ms })
      .where('name', '=', name)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', ms)]))
      .execute();
  }

  async deleteRobot(name: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const deleted = await trx
        .deleteFrom('robots')
        .where('name', '=', name)
        .returning('id')
        .executeTakeFirst();
      if (deleted === undefined) return false;
      await trx.deleteFrom('namespace_members').where('robot_id', '=', deleted.id).execute();
      await trx.deleteFrom('repository_rules').where('robot_id', '=', deleted.id).execute();
      await revokeTokensOf(trx, 'robot', name, Date.now());
      return true;
    });
  }

  // --- teams ---------------------------------------------------------------------------------------

  async createTeam(team: { name: string; description: string }): Promise<TeamRecord> {
    const row = await this.db
      .insertInto('teams')
      .values({ name: team.name, description: team.description, created_at: Date.now() })
      .onConflict((oc) => oc.column('name').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`team ${team.name} already exists`);
    return toTeam(row);
  }

  async getTeam(name: string): Promise<TeamRecord | null> {
    const row = await this.db.selectFrom('teams').selectAll().where('name', '=', name).executeTakeFirst();
    return row === undefined ? null : toTeam(row);
  }

  async listTeams(options: PageOptions): Promise<Page<TeamRecord>> {
    const limit = checkCount('limit', options.limit);
    let query = this.db
      .selectFrom('teams')
      .selectAll()
      .orderBy('name')
      .limit(limit + 1);
    if (options.after !== undefined) query = query.where('name', '>', options.after);
    return toPage((await query.execute()).map(toTeam), limit);
  }

  async deleteTeam(name: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const deleted = await trx
        .deleteFrom('teams')
        .where('name', '=', name)
        .returning('id')
        .executeTakeFirst();
      if (deleted === undefined) return false;
      await trx.deleteFrom('team_members').where('team_id', '=', deleted.id).execute();
      await trx.deleteFrom('namespace_members').where('team_id', '=', deleted.id).execute();
      await trx.deleteFrom('repository_rules').where('team_id', '=', deleted.id).execute();
      return true;
    });
  }

  async addTeamMember(team: string, username: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const teamId = await this.principalId(trx, 'team', team);
      const userId = await this.principalId(trx, 'user', username);
      await trx
        .insertInto('team_members')
        .values({ team_id: teamId, user_id: userId })
        .onConflict((oc) => oc.columns(['team_id', 'user_id']).doNothing())
        .execute();
    });
  }

  async removeTeamMember(team: string, username: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('team_members')
      .where('team_id', '=', (eb) => eb.selectFrom('teams').select('id').where('name', '=', team))
      .where('user_id', '=', (eb) => eb.selectFrom('users').select('id').where('username', '=', username))
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async listTeamMembers(team: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('team_members as tm')
      .innerJoin('teams as t', 't.id', 'tm.team_id')
      .innerJoin('users as u', 'u.id', 'tm.user_id')
      .select('u.username')
      .where('t.name', '=', team)
      .orderBy('u.username')
      .execute();
    return rows.map((r) => r.username);
  }

  async teamsOf(username: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('team_members as tm')
      .innerJoin('teams as t', 't.id', 'tm.team_id')
      .innerJoin('users as u', 'u.id', 'tm.user_id')
      .select('t.name')
      .where('u.username', '=', username)
      .orderBy('t.name')
      .execute();
    return rows.map((r) => r.name);
  }

  // --- namespaces and roles ------------------------------------------------------------------------

  async createNamespace(ns: {
    name: string;
    visibility: Visibility;
    description: string;
  }): Promise<NamespaceRecord> {
    const row = await this.db
      .insertInto('namespaces')
      .values({
        name: ns.name,
        visibility: ns.visibility,
        description: ns.description,
        created_at: Date.now(),
      })
      .onConflict((oc) => oc.column('name').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`namespace ${ns.name} already exists`);
    return toNamespace(row);
  }

  async getNamespace(name: string): Promise<NamespaceRecord | null> {
    const row = await this.db
      .selectFrom('namespaces')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return row === undefined ? null : toNamespace(row);
  }

  async listNamespaces(options: PageOptions): Promise<Page<NamespaceRecord>> {
    const limit = checkCount('limit', options.limit);
    let query = this.db
      .selectFrom('namespaces')
      .selectAll()
      .orderBy('name')
      .limit(limit + 1);
    if (options.after !== undefined) query = query.where('name', '>', options.after);
    return toPage((await query.execute()).map(toNamespace), limit);
  }

  async updateNamespace(
    name: string,
    changes: { visibility?: Visibility; description?: string },
  ): Promise<NamespaceRecord | null> {
    if (changes.visibility === undefined && changes.description === undefined) return this.getNamespace(name);
    const row = await this.db
      .updateTable('namespaces')
      .set({ visibility: changes.visibility, description: changes.description })
      .where('name', '=', name)
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? null : toNamespace(row);
  }

  async deleteNamespace(name: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const deleted = await trx
        .deleteFrom('namespaces')
        .where('name', '=', name)
        .returning('id')
        .executeTakeFirst();
      if (deleted === undefined) return false;
      await trx.deleteFrom('namespace_members').where('namespace_id', '=', deleted.id).execute();
      await trx.deleteFrom('repository_rules').where('namespace_id', '=', deleted.id).execute();
      return true;
    });
  }

  async setMember(namespace: string, kind: MemberKind, principal: string, role: Role): Promise<MemberRecord> {
    const column = PRINCIPAL_COLUMN[kind];
    await this.db.transaction().execute(async (trx) => {
      const namespaceId = await this.namespaceId(trx, namespace);
      const principalId = await this.principalId(trx, kind, principal);
      await trx
        .insertInto('namespace_members')
        .values({ namespace_id: namespaceId, ...principalColumns(kind, principalId), role })
        .onConflict((oc) =>
          oc.columns(['namespace_id', column]).doUpdateSet({ role: (eb) => eb.ref('excluded.role') }),
        )
        .execute();
    });
    return { namespace, kind, principal, role };
  }

  async removeMember(namespace: string, kind: MemberKind, principal: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('namespace_members')
      .where('namespace_id', '=', (eb) =>
        eb.selectFrom('namespaces').select('id').where('name', '=', namespace),
      )
      .where('kind', '=', kind)
      .where(PRINCIPAL_COLUMN[kind], '=', principalIdQuery(this.db, kind, principal))
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async listMembers(namespace: string): Promise<MemberRecord[]> {
    const rows = await this.db
      .selectFrom('namespace_members as m')
      .innerJoin('namespaces as n', 'n.id', 'm.namespace_id')
      .leftJoin('users as u', 'u.id', 'm.user_id')
      .leftJoin('teams as t', 't.id', 'm.team_id')
      .leftJoin('robots as r', 'r.id', 'm.robot_id')
      .select((eb) => [
        'n.name as namespace',
        'm.kind',
        eb.fn.coalesce('u.username', 't.name', 'r.name').as('principal'),
        'm.role',
      ])
      .where('n.name', '=', namespace)
      .orderBy('m.kind')
      .orderBy('principal')
      .execute();
    return rows.map(toMember);
  }

  async publicNamespaces(): Promise<string[]> {
    const rows = await this.db
      .selectFrom('namespaces')
      .select('name')
      .where('visibility', '=', 'public')
      .orderBy('name')
      .execute();
    return rows.map((r) => r.name);
  }

  async membershipsOf(kind: 'user' | 'robot', name: string): Promise<MemberRecord[]> {
    let query;
    if (kind === 'robot') {
      query = this.db
        .selectFrom('robots as p')
        .innerJoin('namespace_members as m', 'm.robot_id', 'p.id')
        .innerJoin('namespaces as n', 'n.id', 'm.namespace_id')
        .select(['n.name as namespace', 'm.kind as kind', 'p.name as principal', 'm.role as role'])
        .where('p.name', '=', name);
    } else {
      // One statement: the user's own memberships, then those of their teams.
      query = this.db
        .selectFrom('users as p')
        .innerJoin('namespace_members as m', 'm.user_id', 'p.id')
        .innerJoin('namespaces as n', 'n.id', 'm.namespace_id')
        .select(['n.name as namespace', 'm.kind as kind', 'p.username as principal', 'm.role as role'])
        .where('p.username', '=', name)
        .unionAll(
          this.db
            .selectFrom('users as p')
            .innerJoin('team_members as tm', 'tm.user_id', 'p.id')
            .innerJoin('teams as t', 't.id', 'tm.team_id')
            .innerJoin('namespace_members as m', 'm.team_id', 't.id')
            .innerJoin('namespaces as n', 'n.id', 'm.namespace_id')
            .select(['n.name as namespace', 'm.kind as kind', 't.name as principal', 'm.role as role'])
            .where('p.username', '=', name),
        );
    }
    // Compound ORDER BY terms must name output columns (aliases), on SQLite.
    const rows = await query.orderBy('namespace').orderBy('kind').orderBy('principal').execute();
    return rows.map(toMember);
  }

  // --- repository rules ----------------------------------------------------------------------------

  async addRule(rule: Omit<RepositoryRuleRecord, 'id'>): Promise<RepositoryRuleRecord> {
    const id = await this.db.transaction().execute(async (trx) => {
      const namespaceId = await this.namespaceId(trx, rule.namespace);
      const principalId = await this.principalId(trx, rule.kind, rule.principal);
      const inserted = await trx
        .insertInto('repository_rules')
        .values({
          namespace_id: namespaceId,
          pattern: rule.pattern,
          ...principalColumns(rule.kind, principalId),
          role: rule.role,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return Number(inserted.id);
    });
    return {
      id,
      namespace: rule.namespace,
      pattern: rule.pattern,
      kind: rule.kind,
      principal: rule.principal,
      role: rule.role,
    };
  }

  async listRules(namespace: string): Promise<RepositoryRuleRecord[]> {
    const rows = await this.db
      .selectFrom('repository_rules as x')
      .innerJoin('namespaces as n', 'n.id', 'x.namespace_id')
      .leftJoin('users as u', 'u.id', 'x.user_id')
      .leftJoin('teams as t', 't.id', 'x.team_id')
      .leftJoin('robots as r', 'r.id', 'x.robot_id')
      .select((eb) => [
        'x.id',
        'n.name as namespace',
        'x.pattern',
        'x.kind',
        eb.fn.coalesce('u.username', 't.name', 'r.name').as('principal'),
        'x.role',
      ])
      .where('n.name', '=', namespace)
      .orderBy('x.id')
      .execute();
    return rows.map(toRule);
  }

  async deleteRule(id: number): Promise<boolean> {
    const result = await this.db.deleteFrom('repository_rules').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async rulesOf(kind: 'user' | 'robot', name: string): Promise<RepositoryRuleRecord[]> {
    let query;
    if (kind === 'robot') {
      query = this.db
        .selectFrom('robots as p')
        .innerJoin('repository_rules as x', 'x.robot_id', 'p.id')
        .innerJoin('namespaces as n', 'n.id', 'x.namespace_id')
        .select([
          'x.id as id',
          'n.name as namespace',
          'x.pattern as pattern',
          'x.kind as kind',
          'p.name as principal',
          'x.role as role',
        ])
        .where('p.name', '=', name);
    } else {
      query = this.db
        .selectFrom('users as p')
        .innerJoin('repository_rules as x', 'x.user_id', 'p.id')
        .innerJoin('namespaces as n', 'n.id', 'x.namespace_id')
        .select([
          'x.id as id',
          'n.name as namespace',
          'x.pattern as pattern',
          'x.kind as kind',
          'p.username as principal',
          'x.role as role',
        ])
        .where('p.username', '=', name)
        .unionAll(
          this.db
            .selectFrom('users as p')
            .innerJoin('team_members as tm', 'tm.user_id', 'p.id')
            .innerJoin('teams as t', 't.id', 'tm.team_id')
            .innerJoin('repository_rules as x', 'x.team_id', 't.id')
            .innerJoin('namespaces as n', 'n.id', 'x.namespace_id')
            .select([
              'x.id as id',
              'n.name as namespace',
              'x.pattern as pattern',
              'x.kind as kind',
              't.name as principal',
              'x.role as role',
            ])
            .where('p.username', '=', name),
        );
    }
    const rows = await query.orderBy('namespace').orderBy('id').execute();
    return rows.map(toRule);
  }

  // --- token signing keys --------------------------------------------------------------------------

  async addSigningKey(key: Omit<SigningKeyRecord, 'retiredAt'>): Promise<void> {
    const row = await this.db
      .insertInto('signing_keys')
      .values({
        kid: key.kid,
        algorithm: key.algorithm,
        private_jwk: key.privateJwk,
        public_jwk: key.publicJwk,
        created_at: key.createdAt.getTime(),
        retired_at: null,
      })
      .onConflict((oc) => oc.column('kid').doNothing())
      .returning('kid')
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`signing key ${key.kid} already exists`);
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    const rows = await this.db
      .selectFrom('signing_keys')
      .selectAll()
      .orderBy('created_at', 'desc')
      .orderBy('kid', 'desc')
      .execute();
    return rows.map(toSigningKey);
  }

  async retireSigningKey(kid: string, at: Date): Promise<boolean> {
    const result = await this.db
      .updateTable('signing_keys')
      .set({ retired_at: at.getTime() })
      .where('kid', '=', kid)
      .where('retired_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async deleteSigningKey(kid: string): Promise<boolean> {
    const result = await this.db.deleteFrom('signing_keys').where('kid', '=', kid).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  // --- refresh tokens ------------------------------------------------------------------------------

  async createRefreshToken(token: Omit<RefreshTokenRecord, 'createdAt' | 'revokedAt'>): Promise<void> {
    const row = await this.db
      .insertInto('refresh_tokens')
      .values({
        id: token.id,
        secret_hash: token.secretHash,
        subject_kind: token.subjectKind,
        subject: token.subject,
        client_id: token.clientId,
        created_at: Date.now(),
        expires_at: token.expiresAt.getTime(),
        revoked_at: null,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`refresh token ${token.id} already exists`);
  }

  async getRefreshToken(id: string): Promise<RefreshTokenRecord | null> {
    const row = await this.db
      .selectFrom('refresh_tokens')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toRefreshToken(row);
  }

  async revokeRefreshToken(id: string): Promise<boolean> {
    const result = await this.db
      .updateTable('refresh_tokens')
      .set({ revoked_at: Date.now() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async revokeRefreshTokensOf(kind: SubjectKind, subject: string): Promise<number> {
    return revokeTokensOf(this.db, kind, subject, Date.now());
  }

  // --- audit log -----------------------------------------------------------------------------------

  async appendAudit(event: AuditEventInput): Promise<void> {
    await this.db
      .insertInto('audit_events')
      .values({
        time: event.time.getTime(),
        actor: event.actor,
        actor_kind: event.actorKind,
        action: event.action,
        target: event.target,
        source_addr: event.sourceAddr,
        success: flag(event.success),
        detail: event.detail === null ? null : JSON.stringify(event.detail),
      })
      .execute();
  }

  async queryAudit(q: AuditQuery): Promise<Page<AuditEvent>> {
    const limit = checkCount('limit', q.limit);
    let query = this.db
      .selectFrom('audit_events')
      .selectAll()
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (q.actor !== undefined) query = query.where('actor', '=', q.actor);
    if (q.action !== undefined) {
      query = q.action.endsWith('.')
        ? query.where(this.startsWith('action', q.action))
        : query.where('action', '=', q.action);
    }
    if (q.target !== undefined) {
      query = q.target.endsWith('*')
        ? query.where(this.startsWith('target', q.target.slice(0, -1)))
        : query.where('target', '=', q.target);
    }
    if (q.success !== undefined) query = query.where('success', '=', flag(q.success));
    if (q.since !== undefined) query = query.where('time', '>=', q.since.getTime());
    if (q.until !== undefined) query = query.where('time', '<', q.until.getTime());
    if (q.before !== undefined) query = query.where('id', '<', q.before);
    return toPage((await query.execute()).map(toAuditEvent), limit);
  }

  // --- failed logins -------------------------------------------------------------------------------

  async recordLoginFailure(failure: { account: string; address: string; at: Date }): Promise<void> {
    await this.db
      .insertInto('login_failures')
      .values({ account: failure.account, address: failure.address, at: failure.at.getTime() })
      .execute();
  }

  async recentLoginFailures(q: {
    account?: string | undefined;
    address: string;
    since: Date;
    limit: number;
  }): Promise<Date[]> {
    let query = this.db
      .selectFrom('login_failures')
      .select('at')
      .where('address', '=', q.address)
      .where('at', '>=', q.since.getTime())
      .orderBy('at', 'desc')
      .limit(checkCount('limit', q.limit));
    if (q.account !== undefined) query = query.where('account', '=', q.account);
    return (await query.execute()).map((r) => new Date(Number(r.at)));
  }

  async loginFailureGroups(q: {
    since: Date;
    perPair: number;
    perAddress: number;
  }): Promise<LoginFailureGroup[]> {
    const since = q.since.getTime();
    const [pairs, addresses] = await Promise.all([
      this.db
        .selectFrom('login_failures')
        .select(({ fn }) => [
          'account',
          'address',
          fn.countAll<number | string>().as('n'),
          fn.max('at').as('last'),
        ])
        .where('at', '>=', since)
        .groupBy(['account', 'address'])
        .having((eb) => eb.fn.countAll(), '>=', checkCount('perPair', q.perPair))
        .execute(),
      this.db
        .selectFrom('login_failures')
        .select(({ fn }) => ['address', fn.countAll<number | string>().as('n'), fn.max('at').as('last')])
        .where('at', '>=', since)
        .groupBy('address')
        .having((eb) => eb.fn.countAll(), '>=', checkCount('perAddress', q.perAddress))
        .execute(),
    ]);
    const groups: LoginFailureGroup[] = [
      ...addresses.map((r) => ({
        account: null,
        address: r.address,
        failures: Number(r.n),
        last: new Date(Number(r.last)),
      })),
      ...pairs.map((r) => ({
        account: r.account,
        address: r.address,
        failures: Number(r.n),
        last: new Date(Number(r.last)),
      })),
    ];
    const bytes = (v: string | null): Buffer => Buffer.from(v ?? '');
    return groups.sort(
      (a, b) =>
        Buffer.compare(bytes(a.address), bytes(b.address)) ||
        (a.account === null
          ? -1
          : b.account === null
            ? 1
            : Buffer.compare(bytes(a.account), bytes(b.account))),
    );
  }

  async clearLoginFailures(filter: {
    account?: string | undefined;
    address?: string | undefined;
    before?: Date | undefined;
  }): Promise<number> {
    if (filter.account === undefined && filter.address === undefined && filter.before === undefined) {
      throw new RangeError('clearLoginFailures needs an account, an address or a time');
    }
    let query = this.db.deleteFrom('login_failures');
    if (filter.account !== undefined) query = query.where('account', '=', filter.account);
    if (filter.address !== undefined) query = query.where('address', '=', filter.address);
    if (filter.before !== undefined) query = query.where('at', '<', filter.before.getTime());
    const result = await query.executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  // --- helpers -------------------------------------------------------------------------------------

  /**
   * `column` starts with `prefix`, case-sensitively, with every character of `prefix` literal. PostgreSQL's LIKE
   * is case-sensitive; SQLite's is not (for ASCII), so SQLite uses GLOB, which is. Both can use the column's
   * index (byte-wise collation).
   */
  private startsWith(column: 'action' | 'target', prefix: string): RawBuilder<boolean> {
    if (this.pg) {
      const pattern = `${prefix.replace(/[\\%_]/g, '\\$&')}%`;
      return sql<boolean>`${sql.ref(column)} like ${pattern} escape '\\'`;
    }
    const pattern = `${prefix.replace(/[*?[]/g, '[$&]')}*`;
    return sql<boolean>`${sql.ref(column)} glob ${pattern}`;
  }

  /** The namespace's id, locked against deletion until the transaction ends; NotFoundError when absent. */
  private async namespaceId(trx: Transaction<Database>, name: string): Promise<number> {
    let query = trx.selectFrom('namespaces').select('id').where('name', '=', name);
    if (this.pg) query = query.forShare();
    const row = await query.executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`namespace ${name} does not exist`);
    return Number(row.id);
  }

  /** The principal's id, locked against deletion until the transaction ends; NotFoundError when absent. */
  private async principalId(trx: Transaction<Database>, kind: MemberKind, name: string): Promise<number> {
    const query = principalIdQuery(trx, kind, name);
    const row = await (this.pg ? query.forShare() : query).executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`${kind} ${name} does not exist`);
    return Number(row.id);
  }
}

/** `select id from <users|teams|robots> where <name> = name`, as a subquery builder. */
function principalIdQuery(
  db: QueryCreator<Database>,
  kind: MemberKind,
  name: string,
): SelectQueryBuilder<Database, 'users' | 'teams' | 'robots', { id: number }> {
  switch (kind) {
    case 'user':
      return db.selectFrom('users').select('id').where('username', '=', name);
    case 'team':
      return db.selectFrom('teams').select('id').where('name', '=', name);
    case 'robot':
      return db.selectFrom('robots').select('id').where('name', '=', name);
  }
}

function principalColumns(
  kind: MemberKind,
  id: number,
): { kind: MemberKind; user_id: number | null; team_id: number | null; robot_id: number | null } {
  return {
    kind,
    user_id: kind === 'user' ? id : null,
    team_id: kind === 'team' ? id : null,
    robot_id: kind === 'robot' ? id : null,
  };
}

async function revokeTokensOf(
  db: Executor,
  kind: SubjectKind,
  subject: string,
  now: number,
): Promise<number> {
  const result = await db
    .updateTable('refresh_tokens')
    .set({ revoked_at: now })
    .where('subject_kind', '=', kind)
    .where('subject', '=', subject)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

function flag(value: boolean): Flag {
  return value ? 1 : 0;
}

function isSet(value: number | string): boolean {
  return Number(value) !== 0;
}

function toMs(date: Date | null): number | null {
  return date === null ? null : date.getTime();
}

function toDate(ms: number | null): Date | null {
  return ms === null ? null : new Date(Number(ms));
}

function toUser(row: Selectable<UsersTable>): UserRecord {
  return {
    username: row.username,
    passwordHash: row.password_hash,
    email: row.email,
    isAdmin: isSet(row.is_admin),
    disabled: isSet(row.disabled),
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function toRobot(row: Selectable<RobotsTable>): RobotRecord {
  return {
    name: row.name,
    description: row.description,
    secretHash: row.secret_hash,
    expiresAt: toDate(row.expires_at),
    revokedAt: toDate(row.revoked_at),
    createdBy: row.created_by,
    createdAt: new Date(Number(row.created_at)),
    lastUsedAt: toDate(row.last_used_at),
  };
}

function toTeam(row: Selectable<TeamsTable>): TeamRecord {
  return { name: row.name, description: row.description, createdAt: new Date(Number(row.created_at)) };
}

function toNamespace(row: Selectable<NamespacesTable>): NamespaceRecord {
  return {
    name: row.name,
    visibility: row.visibility,
    description: row.description,
    createdAt: new Date(Number(row.created_at)),
  };
}

function principalName(row: { principal: string | null; kind: MemberKind }): string {
  // The CHECK constraint guarantees the principal column of `kind` is set, and the FK that it exists.
  if (row.principal === null) throw new Error(`a ${row.kind} membership or rule has no principal`);
  return row.principal;
}

function toMember(row: MemberRow): MemberRecord {
  return { namespace: row.namespace, kind: row.kind, principal: principalName(row), role: row.role };
}

function toRule(row: RuleRow): RepositoryRuleRecord {
  return {
    id: Number(row.id),
    namespace: row.namespace,
    pattern: row.pattern,
    kind: row.kind,
    principal: principalName(row),
    role: row.role,
  };
}

function toSigningKey(row: Selectable<SigningKeysTable>): SigningKeyRecord {
  return {
    kid: row.kid,
    algorithm: row.algorithm,
    privateJwk: row.private_jwk,
    publicJwk: row.public_jwk,
    createdAt: new Date(Number(row.created_at)),
    retiredAt: toDate(row.retired_at),
  };
}

function toRefreshToken(row: Selectable<RefreshTokensTable>): RefreshTokenRecord {
  return {
    id: row.id,
    secretHash: row.secret_hash,
    subjectKind: row.subject_kind,
    subject: row.subject,
    clientId: row.client_id,
    createdAt: new Date(Number(row.created_at)),
    expiresAt: new Date(Number(row.expires_at)),
    revokedAt: toDate(row.revoked_at),
  };
}

function toAuditEvent(row: Selectable<AuditEventsTable>): AuditEvent {
  return {
    id: Number(row.id),
    time: new Date(Number(row.time)),
    actor: row.actor,
    actorKind: row.actor_kind,
    action: row.action,
    target: row.target,
    sourceAddr: row.source_addr,
    success: isSet(row.success),
    detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
  };
}

function toPage<T>(rows: T[], limit: number): Page<T> {
  return { items: rows.slice(0, limit), hasMore: rows.length > limit };
}

function checkCount(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  return n;
}
