/** The audit record of an administrative action, as every admin use case writes it. */
import type { AuditLog } from '../auth/audit.ts';
import type { Actor } from './admin-service.ts';

/**
 * Records that `actor` did `action` on `target` (or was refused, `success` false), with `detail`, and through which
 * interface (`via`: api, cli) when the actor says. A missing audit log records nothing.
 */
export async function recordAction(
  audit: AuditLog | null,
  actor: Actor,
  action: string,
  target: string | null,
  detail: Record<string, unknown>,
  success = true,
): Promise<void> {
  await audit?.record({
    actor: actor.principal,
    action,
    target,
    sourceAddr: actor.sourceAddr ?? null,
    success,
    detail: actor.via ? { via: actor.via, ...detail } : detail,
  });
}
