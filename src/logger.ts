/**
 * The logger that code below the HTTP layer writes through. It has pino's method shape (an object of fields,
 * then a message), so the application logger or any child of it fits, and modules stay free of Fastify and
 * pino types.
 */
export interface Logger {
  /** Detail for debugging; off at the default level. */
  debug(fields: object, message?: string): void;
  /** Something worth knowing happened. */
  info(fields: object, message?: string): void;
  /** Something is wrong but the operation went on. */
  warn(fields: object, message?: string): void;
  /** An operation failed. */
  error(fields: object, message?: string): void;
}

/** A logger that drops everything (tests, commands that print their own output). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
