/**
 * A read query built and compiled once, then run with fresh parameters.
 *
 * Kysely builds an immutable operation tree and compiles it to SQL on every call; on the registry's hottest reads
 * (a manifest by tag, a blob link) that cost more CPU than SQLite running the query. A `CompiledRead` builds its
 * query once with placeholder strings where the parameters go, finds where each placeholder ended up among the
 * compiled parameters, and from then on only substitutes the values: same SQL text, same plugins and dialect
 * (so the statement cache of the SQLite dialect reuses the prepared statement too).
 */
import { CompiledQuery, type Compilable, type Kysely } from 'kysely';

/** Marks a placeholder; no real parameter (a repository name, digest or tag) can contain a NUL character. */
const MARK = '\u0000berth-parameter-';

export class CompiledRead<Db, Params extends readonly unknown[], Row> {
  private compiled: { sql: string; parameters: readonly unknown[]; slots: readonly number[] } | undefined;

  /**
   * @param db where the query runs
   * @param arity how many parameters `build` takes
   * @param build builds the query from placeholders standing for the parameters; every placeholder must be used
   *   as a value (not as an identifier, in a `like` pattern or in an expression that changes it)
   */
  constructor(
    private readonly db: Kysely<Db>,
    private readonly arity: Params['length'],
    private readonly build: (db: Kysely<Db>, ...placeholders: string[]) => Compilable<Row>,
  ) {}

  /** The rows of the query for `params`. */
  async rows(...params: Params): Promise<Row[]> {
    const { sql, parameters, slots } = this.compile();
    const bound = parameters.map((value, i) => (slots[i]! >= 0 ? params[slots[i]!] : value));
    const result = await this.db.executeQuery(CompiledQuery.raw(sql, bound) as CompiledQuery<Row>);
    return result.rows;
  }

  /** The first row of the query for `params`, or undefined when there is none. */
  async first(...params: Params): Promise<Row | undefined> {
    return (await this.rows(...params))[0];
  }

  private compile(): { sql: string; parameters: readonly unknown[]; slots: readonly number[] } {
    if (this.compiled) return this.compiled;
    const placeholders = Array.from({ length: this.arity }, (_, i) => `${MARK}${i}`);
    const query = this.build(this.db, ...placeholders).compile();
    const slots = query.parameters.map((value) =>
      typeof value === 'string' ? placeholders.indexOf(value) : -1,
    );
    for (let i = 0; i < this.arity; i++) {
      if (!slots.includes(i)) throw new Error(`parameter ${i} does not appear as a value in: ${query.sql}`);
    }
    this.compiled = { sql: query.sql, parameters: query.parameters, slots };
    return this.compiled;
  }
}
