/**
 * `observeMethods`: wraps a port (a StorageDriver, a MetadataStore) so that every call of its methods is reported
 * to `OperationObserver`s (metrics, tracing), without the implementation knowing.
 */
import type { OperationComponent, OperationDescriptor, OperationObserver } from './operation-observer.ts';

type End = (error?: unknown) => void;
type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Returns a view of `target` whose methods (own and inherited, except `constructor` and `_`-prefixed ones) report
 * each call to `observers`, as operation `{ component, driver, operation: <method name> }`.
 *
 * - A method returning a promise (thenable) ends when it settles; any other method ends when it returns. A method
 *   returning a stream or an async iterable ends when it returns it (or when the promise for it settles): the
 *   bytes flowing afterwards are not part of the operation.
 * - Errors (thrown or rejected) reach the observers and then the caller, unchanged; the promise the caller gets
 *   is the one the method returned (no new promise is chained in the caller's way).
 * - Methods run with `target` as `this`, so private fields work and calls a method makes on `this` are not
 *   reported again (one operation per call from outside).
 * - Other properties (fields, getters) are read from `target` as they are now; a method replaced on `target`
 *   later is observed in its new form. Assignments through the view land on `target`.
 * - With no observers, `target` itself is returned: zero cost.
 */
export function observeMethods<T extends object>(
  target: T,
  component: OperationComponent,
  driver: string,
  observers: readonly OperationObserver[],
): T {
  if (observers.length === 0) return target;
  // Wrappers by property, each remembering the function it wraps: a method replaced on the target after the view
  // was made (tests stub `ping`) is wrapped anew rather than shadowed by a stale wrapper.
  const wrapped = new Map<PropertyKey, { readonly original: unknown; readonly wrapper: AnyFunction }>();
  // A Proxy rather than a copy: non-method properties stay live (a driver's fields may change), `instanceof` holds.
  return new Proxy(target, {
    get(t, property) {
      const v: unknown = Reflect.get(t, property, t);
      if (typeof v !== 'function') return v;
      const w = wrapped.get(property);
      if (w !== undefined && w.original === v) return w.wrapper;
      if (typeof property !== 'string' || property === 'constructor' || property.startsWith('_')) return v;
      const descriptor: OperationDescriptor = { component, driver, operation: property };
      const wrapper = wrap(v as AnyFunction, t, descriptor, observers);
      wrapped.set(property, { original: v, wrapper });
      return wrapper;
    },
  });
}

function wrap(
  method: AnyFunction,
  target: object,
  descriptor: OperationDescriptor,
  observers: readonly OperationObserver[],
): AnyFunction {
  // The common case (one observer) avoids allocating an array of end callbacks per call.
  if (observers.length === 1) {
    const observer = observers[0] as OperationObserver;
    return function (this: unknown, ...args: unknown[]): unknown {
      const end = observer.begin(descriptor);
      return settle(method, target, args, end);
    };
  }
  return function (this: unknown, ...args: unknown[]): unknown {
    const ends = observers.map((o) => o.begin(descriptor));
    const end: End = (error) => {
      for (const e of ends) e(error);
    };
    return settle(method, target, args, end);
  };
}

function settle(method: AnyFunction, target: object, args: unknown[], end: End): unknown {
  let result: unknown;
  try {
    result = method.apply(target, args);
  } catch (error) {
    end(error);
    throw error;
  }
  if (isThenable(result)) {
    // A side branch: the caller gets `result` itself, so its rejection stays theirs to handle.
    result.then(
      () => end(),
      (error: unknown) => end(error),
    );
  } else {
    end();
  }
  return result;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
