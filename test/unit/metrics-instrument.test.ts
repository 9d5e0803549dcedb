/**
 * `observeMethods` (src/observability/instrument.ts): every method call is reported exactly once, with its error;
 * results, errors, `this` and non-method properties pass through unchanged; no observers, no wrapping.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { observeMethods } from '../../src/observability/instrument.ts';
import type { OperationDescriptor, OperationObserver } from '../../src/observability/operation-observer.ts';
import { BerthMetrics } from '../../src/metrics/metrics.ts';
import { ObjectNotFoundError } from '../../src/storage/driver.ts';

interface Call {
  operation: OperationDescriptor;
  ended: number;
  error?: unknown;
}

function recorder(): { observer: OperationObserver; calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    observer: {
      begin(operation) {
        const call: Call = { operation, ended: 0 };
        calls.push(call);
        return (error) => {
          call.ended++;
          if (error !== undefined) call.error = error;
        };
      },
    },
  };
}

class Base {
  inherited(): string {
    return 'base';
  }
}

class Port extends Base {
  readonly name = 'port';
  #secret = 41;
  counter = 0;
  private resolveLater: (() => void) | undefined;

  get secretPlusOne(): number {
    return this.#secret + 1;
  }

  add(a: number, b: number): number {
    this.counter++;
    return a + b + this.#secret - 41;
  }

  async later(value: string): Promise<string> {
    await new Promise<void>((resolve) => (this.resolveLater = resolve));
    return value;
  }

  release(): void {
    this.resolveLater?.();
  }

  fail(): never {
    throw new TypeError('sync failure');
  }

  async reject(): Promise<never> {
    await Promise.resolve();
    throw new ObjectNotFoundError('missing');
  }

  nested(): number {
    return this.add(1, 1);
  }

  async stream(): Promise<Readable> {
    return Readable.from(['a', 'b']);
  }

  async *list(): AsyncIterable<string> {
    yield 'x';
    yield 'y';
  }

  _internal(): string {
    return 'not observed';
  }
}

describe('observeMethods', () => {
  it('returns the target itself when there are no observers', () => {
    const port = new Port();
    assert.equal(observeMethods(port, 'storage', 'fs', []), port);
  });

  it('reports a synchronous call once, with its result, and runs it on the target', () => {
    const { observer, calls } = recorder();
    const port = new Port();
    const view = observeMethods(port, 'storage', 'filesystem', [observer]);
    assert.equal(view.add(2, 3), 5, 'private fields work: the method runs on the target');
    assert.equal(port.counter, 1);
    assert.equal(view.counter, 1, 'fields are read live from the target');
    assert.equal(view.secretPlusOne, 42, 'getters run on the target');
    assert.equal(view.name, 'port');
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]?.operation, { component: 'storage', driver: 'filesystem', operation: 'add' });
    assert.equal(calls[0]?.ended, 1);
    assert.equal(calls[0]?.error, undefined);
    assert.ok(view instanceof Port);
  });

  it('a method detached from the view still works and is still observed', () => {
    const { observer, calls } = recorder();
    const view = observeMethods(new Port(), 'storage', 'fs', [observer]);
    const add = view.add;
    assert.equal(add(1, 2), 3);
    assert.equal(calls.length, 1);
    assert.equal(view.add, add, 'the wrapper is made once');
  });

  it('ends an async call when its promise settles, not before', async () => {
    const { observer, calls } = recorder();
    const view = observeMethods(new Port(), 'database', 'sqlite', [observer]);
    const pending = view.later('done');
    await Promise.resolve();
    assert.equal(calls[0]?.ended, 0, 'not ended while pending');
    view.release();
    assert.equal(await pending, 'done');
    await Promise.resolve();
    assert.equal(calls[0]?.ended, 1);
    assert.equal(calls[0]?.error, undefined);
    assert.deepEqual(
      calls.map((c) => c.operation.operation),
      ['later', 'release'],
    );
  });

  it('observes a method replaced on the target after the view was made', () => {
    const { observer, calls } = recorder();
    const port = new Port();
    const view = observeMethods(port, 'storage', 'fs', [observer]);
    view.add = () => 99;
    assert.equal(port.add(0, 0), 99, 'the assignment reached the target');
    assert.equal(view.add(0, 0), 99);
    assert.equal(calls.length, 1);
  });

  it('re-throws synchronous errors unchanged and reports them', () => {
    const { observer, calls } = recorder();
    const view = observeMethods(new Port(), 'storage', 'fs', [observer]);
    let thrown: unknown;
    try {
      view.fail();
    } catch (e) {
      thrown = e;
    }
    assert.ok(thrown instanceof TypeError);
    assert.equal((thrown as Error).message, 'sync failure');
    assert.equal(calls[0]?.error, thrown);
    assert.equal(calls[0]?.ended, 1);
  });

  it('passes rejections through unchanged and reports them', async () => {
    const { observer, calls } = recorder();
    const view = observeMethods(new Port(), 'storage', 'fs', [observer]);
    await assert.rejects(view.reject(), ObjectNotFoundError);
    await Promise.resolve();
    assert.ok(calls[0]?.error instanceof ObjectNotFoundError);
    assert.equal(calls[0]?.ended, 1);
  });

  it('reports one operation for a method calling another on `this`', () => {
    const { observer, calls } = recorder();
    const view = observeMethods(new Port(), 'storage', 'fs', [observer]);
    assert.equal(view.nested(), 2);
    assert.deepEqual(
      calls.map((c) => c.operation.operation),
      ['nested'],
    );
  });

  it('ends a stream-returning call when the stream is handed over; the stream is untouched', async () => {
    const { observer, calls } = recorder();
    const view = observeMethods(new Port(), 'storage', 'fs', [observer]);
    const stream = await view.stream();
    assert.equal(calls[0]?.ended, 1);
    const chunks: string[] = [];
    for await (const c of stream) chunks.push(String(c));
    assert.deepEqual(chunks, ['a', 'b']);
    const items: string[] = [];
    for await (const x of view.list()) items.push(x);
    assert.deepEqual(items, ['x', 'y']);
    assert.equal(calls[1]?.operation.operation, 'list');
  });

  it('observes inherited methods but not `_`-prefixed ones or the constructor', () => {
    const { observer, calls } = recorder();
    const view = observeMethods(new Port(), 'storage', 'fs', [observer]);
    assert.equal(view.inherited(), 'base');
    assert.equal(view._internal(), 'not observed');
    assert.equal(view.constructor, Port);
    assert.deepEqual(
      calls.map((c) => c.operation.operation),
      ['inherited'],
    );
  });

  it('reports to every observer', () => {
    const a = recorder();
    const b = recorder();
    const view = observeMethods(new Port(), 'storage', 'fs', [a.observer, b.observer]);
    assert.throws(() => view.fail());
    assert.equal(a.calls[0]?.ended, 1);
    assert.equal(b.calls[0]?.ended, 1);
    assert.ok(b.calls[0]?.error instanceof TypeError);
  });
});

describe('BerthMetrics operation observer', () => {
  it('times every call and counts failures, but not an absent object', async () => {
    const metrics = new BerthMetrics({ defaultMetrics: false });
    const view = observeMethods(new Port(), 'storage', 'filesystem', [metrics.operationObserver]);
    view.add(1, 2);
    assert.throws(() => view.fail());
    await assert.rejects(view.reject());
    await Promise.resolve();
    const text = await metrics.scrape();
    const count = (op: string): string | undefined =>
      new RegExp(
        `^berth_storage_operation_duration_seconds_count\\{driver="filesystem",operation="${op}"\\} (\\d+)$`,
        'm',
      ).exec(text)?.[1];
    const errors = (op: string): string | undefined =>
      new RegExp(
        `^berth_storage_operation_errors_total\\{driver="filesystem",operation="${op}"\\} (\\d+)$`,
        'm',
      ).exec(text)?.[1];
    assert.equal(count('add'), '1');
    assert.equal(count('fail'), '1');
    assert.equal(count('reject'), '1');
    assert.equal(errors('add'), '0');
    assert.equal(errors('fail'), '1');
    assert.equal(errors('reject'), '0', 'ObjectNotFoundError is an answer');
  });
});
