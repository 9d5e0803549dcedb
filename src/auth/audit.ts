/** Writes audit events (logins, pushes, deletes, account and permission changes) to the metadata audit log. */
import type { AuditEventInput, AuthStore } from '../metadata/auth-store.ts';
import type { Principal } from './principal.ts';

export interface AuditRecord {
  readonly actor: Principal | null;
  readonly action: string;
  readonly target?: string | null;
  readonly sourceAddr?: string | null;
  readonly success?: boolean;
  readonly detail?: Record<string, unknown> | null;
}

export class AuditLog {
  constructor(
    private readonly store: AuthStore,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  /**
   * Appends an event. A failure to write is reported to `onError` and never fails the operation being audited
   * (that operation has already happened).
   */
  async record(record: AuditRecord): Promise<void> {
    const actor = record.actor;
    const event: AuditEventInput = {
      time: new Date(),
      actor: actor ? actor.name : null,
      actorKind: actor ? actor.kind : 'system',
      action: record.action,
      target: record.target ?? null,
      sourceAddr: record.sourceAddr ?? null,
      success: record.success ?? true,
      detail: record.detail ?? null,
    };
    try {
      await this.store.appendAudit(event);
    } catch (err) {
      this.onError(err);
    }
  }
}
