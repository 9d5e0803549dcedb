/**
 * The process's logger: pino JSON lines on stdout at `log.level`, with credentials removed. `berth serve` builds
 * it once and hands it to the services (storage, database, audit) and to the HTTP application, so that every
 * line the process writes goes the same way.
 */
import pino from 'pino';
import type { Config } from '../config/schema.ts';

export function createProcessLogger(config: Config): pino.Logger {
  return pino(
    {
      level: config.log.level,
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'],
        remove: true,
      },
    },
    // Asynchronous writes to stdout: lines logged while a write is in flight go out together in the next one, so
    // a busy registry makes one write(2) per batch of access-log lines rather than one per request, and the event
    // loop never waits on the log consumer. Pending lines are flushed at exit.
    pino.destination({ dest: 1, sync: false }),
  );
}
