/** Start-up failures that are the configuration's to fix, reported like configuration errors. */
import { ConfigError } from './load.ts';

/**
 * The configuration is valid, but what a key names cannot be used: the port is taken, the storage takes no
 * writes, the database does not open, a file is missing. Handled like a ConfigError: one line naming the key
 * (`config key listen: 0.0.0.0:5000 is already in use`) and exit code 2.
 */
export class StartupError extends ConfigError {
  constructor(
    readonly key: string,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(`config key ${key}: ${problem}`, options);
  }
}

/** What went wrong, in one line: the error's message, else its code (a failed connect may have no message). */
export function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.message !== '') return error.message.replace(/\s*\n\s*/g, ' ');
  return (error as { code?: string }).code ?? error.name;
}
