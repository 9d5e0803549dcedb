/** The first problem a schema found in a document, as a message naming the offending field. */
import type { z } from 'zod';

export interface SchemaProblem {
  /** `unknown field a.b`, or `a.b: <what is wrong>` (`<what>: ...` when the document itself is wrong). */
  readonly message: string;
  /** The dotted path of the field, when one is at fault. */
  readonly field: string | undefined;
}

/** Describes the first issue of `error`; `what` names the whole document (`policy`, `settings`). */
export function schemaProblem(error: z.ZodError, what: string): SchemaProblem {
  const issue = error.issues[0];
  const keys = issue?.code === 'unrecognized_keys' ? issue.keys : [];
  const field = [...(issue?.path ?? []), ...keys.slice(0, 1)].map(String).join('.');
  const message =
    issue?.code === 'unrecognized_keys'
      ? `unknown field ${field}`
      : `${field || what}: ${issue?.message ?? 'invalid'}`;
  return { message, field: field || undefined };
}
