/** A counting semaphore: at most `capacity` holders at once; the others wait in arrival order. */
export class Semaphore {
  #held = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly capacity: number) {}

  /** Resolves once a permit is held (at once when one is free). */
  acquire(): Promise<void> {
    if (this.#held < this.capacity) {
      this.#held++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Returns a permit, handing it to the longest waiter if any. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#held = Math.max(0, this.#held - 1);
  }
}
