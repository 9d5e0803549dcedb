/**
 * Lists of any length (a manifest's descriptors, the tags of a push) bound as ONE statement parameter.
 *
 * Binding one variable per element (`in (?, ?, ...)`, a multi-row `values` list) fails past the database's limit,
 * which a client controls: 32,766 variables per statement in this SQLite build, 65,535 bind parameters per
 * statement on PostgreSQL. It also gives every list length its own SQL text, so its own prepared statement. A
 * set-valued parameter has neither problem and keeps the whole check or insert in one statement:
 * - PostgreSQL: a `text[]` parameter, `column = any($1::text[])` and `unnest($1::text[])`;
 * - SQLite: the list as a JSON array in one text parameter, expanded by the built-in `json_each`.
 */
import { sql } from 'kysely';
import type { AliasedRawBuilder, QueryCreator, RawBuilder } from 'kysely';
import type { Database, SqlDialect } from './schema.ts';

/** The condition "`column` equals one of `values`" (false for an empty list), with one parameter. */
export function isOneOf(dialect: SqlDialect, column: string, values: readonly string[]): RawBuilder<boolean> {
  return dialect === 'postgres'
    ? sql<boolean>`${sql.ref(column)} = any(${values}::text[])`
    : sql<boolean>`${sql.ref(column)} in (select value from json_each(${JSON.stringify(values)}))`;
}

/**
 * `values` as a derived table `list` of one text column `value`, one row per element (duplicates kept, order
 * unspecified: add an ORDER BY when it matters).
 */
function listTable(
  dialect: SqlDialect,
  values: readonly string[],
): AliasedRawBuilder<{ value: string }, 'list'> {
  const rows =
    dialect === 'postgres'
      ? sql<{ value: string }>`(select unnest(${values}::text[]) as value)`
      : sql<{ value: string }>`(select value from json_each(${JSON.stringify(values)}))`;
  return rows.as('list');
}

/**
 * `select ... from listTable(values)`, for an `INSERT ... SELECT` that may end in `ON CONFLICT`: SQLite reads an
 * `ON` right after a FROM item as a join constraint, so the query carries a `where true` between the two.
 */
export function selectFromList(db: QueryCreator<Database>, dialect: SqlDialect, values: readonly string[]) {
  return db.selectFrom(listTable(dialect, values)).where(sql<boolean>`true`);
}
