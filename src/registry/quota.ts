/**
 * Namespace storage quotas on the push path. The metadata store enforces them (`metadata/usage-accounting.ts`:
 * the usage increment is conditional on the quota, in the write's transaction) and throws `QuotaExceededError`;
 * this module turns that into the client's answer (403 DENIED with the usage in the message), records the refusal
 * as a `quota.exceeded` event, and adds `quota.warning` to the events of a write that crosses the warning
 * threshold.
 */
import type { EventContext, NewDomainEvent } from '../events/event.ts';
import type { EventsOf, LinkBlobOptions, LinkBlobOutcome } from '../metadata/store.ts';
import { QuotaExceededError, type UsageChange } from '../metadata/usage.ts';
import type { Digest } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';
import { formatBytes } from '../util/bytes.ts';
import type { RegistryDeps } from './options.ts';

/** The default fraction of a quota whose crossing stores `quota.warning` (`quotas.warningThreshold`). */
export const DEFAULT_WARNING_THRESHOLD = 0.85;

/** The client's message for a refused push: `quota exceeded: namespace team uses 9.8 GiB of 10 GiB`. */
export function quotaExceededMessage(error: QuotaExceededError): string {
  return `quota exceeded: namespace ${error.namespace} uses ${formatBytes(error.usage)} of ${formatBytes(error.quota)}`;
}

/** True when `change` took the usage from below `threshold` of the quota to at least it. */
export function crossesWarning(change: UsageChange, threshold: number): boolean {
  if (change.quota === null) return false;
  const limit = change.quota * threshold;
  return change.before < limit && change.after >= limit;
}

/**
 * `events` plus a `quota.warning` when the write's usage change (reported in its outcome) crosses the warning
 * threshold; stored in the write's transaction like the rest.
 */
export function withQuotaWarning<O extends { readonly usage?: UsageChange | null }>(
  events: EventsOf<O>,
  context: EventContext,
  repository: string,
  threshold: number = DEFAULT_WARNING_THRESHOLD,
): EventsOf<O> {
  return (outcome) => {
    const change = outcome.usage;
    if (change == null || !crossesWarning(change, threshold)) return events(outcome);
    const warning: NewDomainEvent = {
      type: 'quota.warning',
      target: {
        repository,
        namespace: change.namespace,
        usage: change.after,
        quota: change.quota as number,
      },
      actor: context.actor,
      request: context.request,
    };
    return [...events(outcome), warning];
  };
}

/**
 * Runs the write `work`; when the store refuses it for the namespace's quota, records `quota.exceeded` (outside the
 * rolled-back transaction, best effort: a failure to record it does not change the answer) and throws 403 DENIED.
 * Blob bytes already committed to storage before a refused link stay there, unlinked, for garbage collection.
 */
export async function refusingOverQuota<T>(
  deps: RegistryDeps,
  context: EventContext,
  repository: string,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (!(e instanceof QuotaExceededError)) throw e;
    const event: NewDomainEvent = {
      type: 'quota.exceeded',
      target: { repository, namespace: e.namespace, usage: e.usage, quota: e.quota, size: e.requested },
      actor: context.actor,
      request: context.request,
    };
    await deps.metadata.appendEvents([event]).catch(() => undefined);
    throw new RegistryError('DENIED', quotaExceededMessage(e), {
      detail: { namespace: e.namespace, usage: e.usage, quota: e.quota, requested: e.requested },
      cause: e,
    });
  }
}

/**
 * `metadata.linkBlob` under the quota: with `quota.warning` added to `events` when the link crosses the warning
 * threshold, and 403 DENIED (with `quota.exceeded` recorded) when the blob does not fit the namespace's quota.
 */
export async function linkBlobWithinQuota(
  deps: RegistryDeps,
  context: EventContext,
  repository: string,
  blob: { digest: Digest; size: number },
  events: EventsOf<LinkBlobOutcome>,
  options: LinkBlobOptions = {},
): Promise<boolean> {
  const threshold = deps.options.quotaWarningThreshold;
  return refusingOverQuota(deps, context, repository, () =>
    deps.metadata.linkBlob(
      repository,
      blob.digest,
      blob.size,
      withQuotaWarning(events, context, repository, threshold),
      options,
    ),
  );
}
