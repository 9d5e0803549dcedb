/**
 * Pull policies: checks a namespace applies to a GET or HEAD of a manifest before it is served (signatures
 * required, vulnerable images refused). Each answers pass, or warn (the manifest is served with a `Warning`
 * header), or throws a PullRefusedError (412), which the HTTP layer audits.
 */
import type { ManifestRecord } from '../metadata/store.ts';
import { RegistryError } from '../oci/errors.ts';

/** 412 for a pull a namespace's policy refuses; `reason` is the audit log's short reason. */
export class PullRefusedError extends RegistryError {
  constructor(
    message: string,
    readonly reason: string,
    detail: Record<string, unknown>,
  ) {
    super('DENIED', message, { status: 412, detail });
    this.name = new.target.name;
  }
}

/** What a pull policy decided. */
export type PullDecision =
  /** Nothing to object to; `reason` says why (for tests and logs). */
  | { readonly outcome: 'pass'; readonly reason: string }
  /** Objectionable, under a warning-only policy: serve it with this Warning header value. */
  | { readonly outcome: 'warn'; readonly warning: string; readonly message: string };

/** A check applied to every pull of a manifest. */
export interface PullPolicy {
  /**
   * Decides a GET or HEAD of `manifest`. `bypass` resolves to true when the caller may pass whatever the
   * policy says (a principal that may push to the repository); it is called only when the policy objects.
   * Throws PullRefusedError to refuse; other errors are failures of the check itself.
   */
  checkPull(manifest: ManifestRecord, bypass: () => Promise<boolean>): Promise<PullDecision>;
}

/** The reason of the refusal a request (a Fastify request object) met, for the metrics hook that counts it. */
export const refusalOf = new WeakMap<object, string>();

/** The Warning header value of a warn decision about `message`. */
export function pullWarning(message: string): { outcome: 'warn'; warning: string; message: string } {
  return { outcome: 'warn', message, warning: `199 berth "${message.replace(/["\\]/g, "'")}"` };
}
