/**
 * Eviction of cached content: an upstream's `evictAfterDays` becomes the retention policy of its namespace, which
 * keeps the tags pulled or (re)fetched within that many days and untags the others; garbage collection then
 * reclaims what no tag reaches any more. Retention runs on its schedule (`retention.schedule`).
 */
import type { RetentionService } from '../lifecycle/retention.ts';
import { parseRetentionPolicy, type RetentionPolicy } from '../lifecycle/retention-policy.ts';

/** The retention policy that evicts what was neither pulled nor fetched within `days` days. */
export function evictionPolicy(days: number): RetentionPolicy {
  return parseRetentionPolicy({
    rules: [
      { kind: 'pulledWithin', days },
      { kind: 'pushedWithin', days },
    ],
    untagged: { action: 'keep' },
  });
}

/** Whether `policy` is one `evictionPolicy` made (so that turning eviction off may remove it). */
function isEvictionPolicy(policy: RetentionPolicy): boolean {
  const [a, b, ...rest] = policy.rules;
  return (
    rest.length === 0 &&
    a?.kind === 'pulledWithin' &&
    b?.kind === 'pushedWithin' &&
    a.days === b.days &&
    policy.repositories.include.length === 1 &&
    policy.repositories.include[0] === '**' &&
    policy.repositories.exclude.length === 0
  );
}

/**
 * Sets the namespace's retention policy for eviction after `days` days, or with null removes a policy eviction
 * set (a policy an administrator wrote stays).
 */
export async function applyEviction(
  retention: RetentionService,
  namespace: string,
  days: number | null,
  by: string | null,
): Promise<void> {
  const current = await retention.policy(namespace).catch(() => null);
  if (days === null) {
    if (current && isEvictionPolicy(current)) await retention.removePolicy(namespace);
    return;
  }
  const wanted = evictionPolicy(days);
  if (current && JSON.stringify(current) === JSON.stringify(wanted)) return;
  await retention.setPolicy(namespace, wanted, by);
}
