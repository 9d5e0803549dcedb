/**
 * Which trace context is active, per asynchronous call chain. Berth keeps its own store rather than registering
 * the OpenTelemetry API's global context manager, so that tracing is confined to the services that created it
 * (several registries in one test process each export to their own endpoint, and nothing global outlives them).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ROOT_CONTEXT, type Context } from '@opentelemetry/api';

export class ContextStore {
  readonly #storage = new AsyncLocalStorage<Context>();

  /** The context of the innermost `with` around the caller, ROOT_CONTEXT outside any. */
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }

  /**
   * Runs `fn` with `context` active. Why this is enough for a request: AsyncLocalStorage follows callbacks,
   * promises and timers started inside `fn`, so a Fastify hook that calls `done()` inside `with` makes the
   * context active for the rest of the hook chain and the handler.
   */
  with<T>(context: Context, fn: () => T): T {
    return this.#storage.run(context, fn);
  }
}
