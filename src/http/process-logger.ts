/**
 * The process's logger: pino JSON lines on stdout at `log.level`, with credentials removed. `berth serve` builds
 * it once and hands it to the services (storage, database, audit) and to the HTTP application, so that every
 * line the process writes goes the same way.
 *
 * Every line logged about a request carries the client's address (`remote`): the request's logger is registered
 * with it (`bindRemoteAddress`), and a mixin adds it to each line that logger writes. Why not a binding of the
 * request's logger: that needs a second child logger per request, or a custom child-logger factory that Fastify
 * then validates per request, and either cost a tenth to a quarter of the manifest GET rate; the mixin costs a
 * map lookup per line written.
 */
import pino, { type DestinationStream } from 'pino';
import type { Config } from '../config/schema.ts';

/** The client address of each request's logger. */
const remoteAddresses = new WeakMap<object, string>();

/** Makes every line that `requestLogger` (a request's child logger) writes carry `remote: address`. */
export function bindRemoteAddress(requestLogger: object, address: string | undefined): void {
  if (address !== undefined) remoteAddresses.set(requestLogger, address);
}

/** The process logger; `destination` defaults to asynchronous writes to stdout. */
export function createProcessLogger(config: Config, destination?: DestinationStream): pino.Logger {
  return pino(
    {
      level: config.log.level,
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'],
        remove: true,
      },
      mixin: (_fields, _level, logger) => {
        const remote = remoteAddresses.get(logger);
        return remote === undefined ? {} : { remote };
      },
    },
    // Asynchronous writes to stdout: lines logged while a write is in flight go out together in the next one, so
    // a busy registry makes one write(2) per batch of access-log lines rather than one per request, and the event
    // loop never waits on the log consumer. Pending lines are flushed at exit.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
