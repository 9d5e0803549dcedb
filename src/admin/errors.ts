/**
 * Typed failures of the administration use cases. The HTTP API maps them to 404/409/400/403 (see
 * `http/admin/errors.ts`), the CLI to a message on stderr and exit code 1.
 */

export type AdminErrorKind = 'not-found' | 'conflict' | 'invalid' | 'forbidden';

export class AdminError extends Error {
  constructor(
    readonly kind: AdminErrorKind,
    message: string,
    /** The offending input field, for `invalid`. */
    readonly field?: string,
  ) {
    super(message);
    this.name = 'AdminError';
  }
}

export const notFound = (message: string): AdminError => new AdminError('not-found', message);
export const conflict = (message: string): AdminError => new AdminError('conflict', message);
export const invalid = (message: string, field?: string): AdminError =>
  new AdminError('invalid', message, field);
export const forbidden = (message: string): AdminError => new AdminError('forbidden', message);
