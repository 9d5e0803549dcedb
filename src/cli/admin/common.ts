/**
 * What every administration command shares: `--config`/`--data` (as `berth serve`) and `--json`, opening the
 * services on the database and closing them, turning failures into a message and an exit code (1 for a refused
 * or invalid operation, 2 for a configuration error), and plain-text tables.
 */
import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { parse as parseYaml } from 'yaml';
import { AdminService, SYSTEM_ACTOR, type Actor } from '../../admin/admin-service.ts';
import { AdminError, invalid } from '../../admin/errors.ts';
import { JobAdmin } from '../../admin/job-admin.ts';
import { ConfigError, loadConfig } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { createServices, type Services } from '../../container.ts';
import type { ListResult } from '../../admin/views.ts';

export interface CommonFlags {
  readonly config?: string;
  readonly data?: string;
  readonly json?: boolean;
}

export interface Context {
  readonly admin: AdminService;
  /** The job queue's administration (`berth jobs`). */
  readonly jobs: JobAdmin;
  readonly actor: Actor;
  readonly json: boolean;
  /** The configuration and the services opened on its database (for commands beyond AdminService). */
  readonly config: Config;
  readonly services: Services;
  /** Writes to stdout. */
  out(text: string): void;
}

/** Adds `--config`, `--data` and `--json` to a command. */
export function common(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML configuration file (also BERTH_CONFIG)')
    .option('-d, --data <dir>', 'data directory of the embedded default (default ./data)')
    .option('--json', 'print JSON instead of a table');
}

/** Runs `fn` on the services of the configured database, then closes them; failures set the exit code. */
export async function run(
  command: string,
  flags: CommonFlags,
  fn: (ctx: Context) => Promise<void>,
): Promise<void> {
  const fail = (message: string, code: number): void => {
    process.stderr.write(`berth ${command}: ${message}\n`);
    process.exitCode = code;
  };
  let services;
  try {
    const config = loadConfig({
      file: flags.config ?? process.env.BERTH_CONFIG,
      overrides: { data: flags.data },
    });
    services = await createServices(config);
    const admin = AdminService.from(services.auth, { personalNamespaces: config.auth.personalNamespaces });
    await fn({
      admin,
      jobs: new JobAdmin(services.jobs, services.auth.audit),
      actor: SYSTEM_ACTOR,
      json: flags.json === true,
      config,
      services,
      out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    });
  } catch (e) {
    if (e instanceof AdminError) fail(e.message, 1);
    else if (e instanceof ConfigError) fail(e.message, 2);
    else throw e;
  } finally {
    await services?.close();
  }
}

/** Pretty JSON (dates as RFC 3339). */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** A cell: dates without milliseconds, null/undefined as `-`. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (value instanceof Date) return value.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A plain-text table with a header row; columns padded to their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [headers.map(String), ...rows.map((r) => r.map(cell))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return `${cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

/** `key: value` lines. */
export function fields(entries: readonly (readonly [string, unknown])[]): string {
  const width = Math.max(...entries.map(([k]) => k.length)) + 1;
  return `${entries.map(([k, v]) => `${`${k}:`.padEnd(width)} ${cell(v)}`).join('\n')}\n`;
}

export interface PageFlags {
  readonly limit?: number;
  readonly after?: string;
}

/** Adds `--limit` and `--after` to a list command. */
export function paging(cmd: Command): Command {
  return cmd
    .option('--limit <n>', 'print at most this many (default: all)', positiveInt)
    .option('--after <cursor>', 'start after this cursor (the `next` of a previous page)');
}

/**
 * Every item (following `next`), or one page with `--limit`. The JSON form is the API's `{items, next}`.
 */
export async function collect<T>(
  flags: PageFlags,
  fetch: (page: { limit?: number; after?: string }) => Promise<ListResult<T>>,
): Promise<ListResult<T>> {
  if (flags.limit !== undefined) {
    return fetch({ limit: flags.limit, ...(flags.after !== undefined ? { after: flags.after } : {}) });
  }
  const items: T[] = [];
  let after = flags.after;
  for (;;) {
    const page = await fetch({ limit: 1000, ...(after !== undefined ? { after } : {}) });
    items.push(...page.items);
    if (page.next === null) return { items, next: null };
    after = page.next;
  }
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive whole number');
  }
  return n;
}

export function booleanArg(value: string): boolean {
  if (/^(true|yes|on|1)$/i.test(value)) return true;
  if (/^(false|no|off|0)$/i.test(value)) return false;
  throw new InvalidArgumentError('expected true or false');
}

/** All of stdin, without one trailing newline (for `--password-stdin`). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** The JSON or YAML document in `file` (`-`: stdin); `invalid` (field `file`) when unreadable or unparsable. */
export async function readDocument(file: string): Promise<unknown> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (e) {
    throw invalid(`cannot read ${file}: ${(e as Error).message}`, 'file');
  }
  try {
    return parseYaml(text) as unknown;
  } catch (e) {
    throw invalid(`${file} is neither JSON nor YAML: ${(e as Error).message}`, 'file');
  }
}
