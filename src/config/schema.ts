/**
 * The configuration schema: one definition gives the types, the defaults, the validation and the documentation
 * (every leaf's `.describe()` text is what `docs/configuration.md` lists). Keys are camelCase in YAML; each leaf
 * can be overridden by an environment variable `BERTH_<PATH>` in UPPER_SNAKE_CASE (see `env.ts`).
 */
import { z } from 'zod';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: a number of seconds, or a string such as `500ms`, `30s`, `15m`, `24h`, `7d`. Parsed to ms. */
export const duration = z
  .union([
    z.number().nonnegative(),
    z.string().regex(DURATION_RE, 'expected a duration such as 30s, 15m, 24h or 7d'),
  ])
  .transform((v) => {
    if (typeof v === 'number') return Math.round(v * 1000);
    const m = DURATION_RE.exec(v) as RegExpExecArray;
    return Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number));
  });

const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]*):\d{1,5}$/, 'expected HOST:PORT, e.g. 0.0.0.0:5000 or [::1]:5000');

export const configSchema = z
  .object({
    listen: listenAddress
      .default('0.0.0.0:5000')
      .describe('Address and port the HTTP server listens on (`HOST:PORT`).'),
    data: z
      .string()
      .min(1)
      .default('./data')
      .describe(
        'Data directory of the embedded default: blobs under `<data>/blobs`, metadata in `<data>/berth.db`.',
      ),
    publicUrl: z
      .url({ protocol: /^https?$/ })
      .nullable()
      .default(null)
      .describe(
        'Base URL clients reach the registry at (e.g. `https://registry.example.com`). When set, `Location` headers use it; otherwise they follow `X-Forwarded-Proto`/`X-Forwarded-Host` or the request `Host`.',
      ),
    storage: z
      .object({
        driver: z.enum(['filesystem']).default('filesystem').describe('Blob storage driver.'),
        filesystem: z
          .object({
            root: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe('Root directory of the filesystem driver; default `<data>/blobs`.'),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    metadata: z
      .object({
        driver: z.enum(['sqlite']).default('sqlite').describe('Metadata database.'),
        sqlite: z
          .object({
            path: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe('SQLite database file; default `<data>/berth.db`.'),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    registry: z
      .object({
        deletes: z
          .boolean()
          .default(true)
          .describe('Allow DELETE of manifests, tags and blobs. When false, deletes answer 405 UNSUPPORTED.'),
        maxManifestSize: z
          .number()
          .int()
          .positive()
          .default(4 * 1024 * 1024)
          .describe('Largest manifest accepted on push, in bytes; larger ones get 413.'),
        catalogPageSize: z
          .number()
          .int()
          .positive()
          .max(100_000)
          .default(1000)
          .describe(
            'Most repositories one `/v2/_catalog` page returns (also the default when `n` is absent).',
          ),
        tagsPageSize: z
          .number()
          .int()
          .positive()
          .max(1_000_000)
          .default(100_000)
          .describe('Most tags one `tags/list` page returns (also the default when `n` is absent).'),
      })
      .strict()
      .prefault({}),
    uploads: z
      .object({
        purgeAfter: duration
          .prefault('24h')
          .describe('An upload session idle for this long is purged (its bytes deleted); e.g. `24h`.'),
        purgeInterval: duration
          .prefault('1h')
          .describe('How often stale upload sessions are looked for; `0` disables the purge job.'),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        relativeUrls: z
          .boolean()
          .default(false)
          .describe('Send relative `Location` URLs instead of absolute ones.'),
        trustForwardedHeaders: z
          .boolean()
          .default(true)
          .describe('Honour `X-Forwarded-Proto` and `X-Forwarded-Host` when building absolute URLs.'),
        shutdownTimeout: duration
          .prefault('30s')
          .describe('On SIGTERM/SIGINT, how long in-flight requests may take before the process exits.'),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info')
          .describe('Log level (pino, JSON lines on stdout).'),
        accessLog: z
          .boolean()
          .default(true)
          .describe('Log one line per request (method, path, status, duration).'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** The input shape (what YAML may contain). */
export type ConfigInput = z.input<typeof configSchema>;
/** The validated configuration with defaults applied and durations in milliseconds. */
export type Config = z.output<typeof configSchema>;
