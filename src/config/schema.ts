/**
 * The configuration schema: one definition gives the types, the defaults, the validation and the documentation
 * (every leaf's `.describe()` text is what `docs/configuration.md` lists). Keys are camelCase in YAML; each leaf
 * can be overridden by an environment variable `BERTH_<PATH>` in UPPER_SNAKE_CASE (see `env.ts`).
 */
import { duration } from './duration.ts';
import { z } from 'zod';
import { slotClock } from '../jobs/schedule.ts';
import { parseAddressRange } from './address-range.ts';
import { configUpstreamSchema } from '../proxy/upstream.ts';

/** A cron expression the job runner's schedules accept. */
function isCron(value: string): boolean {
  try {
    slotClock(value);
    return true;
  } catch {
    return false;
  }
}

export { duration };

/** A duration that must not be zero (a timeout of 0 would mean "never" to Node). */
const positiveDuration = duration.refine((ms) => ms > 0, 'must be greater than 0');

const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]*):\d{1,5}$/, 'expected HOST:PORT, e.g. 0.0.0.0:5000 or [::1]:5000')
  .refine((v) => Number(/:(\d+)$/.exec(v)?.[1] ?? 0) <= 65_535, 'the port must be between 0 and 65535');

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
        driver: z
          .enum(['filesystem', 's3'])
          .default('filesystem')
          .describe(
            'Blob storage driver: `filesystem` (the embedded default) or `s3` (any S3-compatible object storage).',
          ),
        filesystem: z
          .object({
            root: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe('Root directory of the filesystem driver; default `<data>/blobs`.'),
            minFree: z
              .number()
              .int()
              .nonnegative()
              .default(1024 * 1024 * 1024)
              .describe(
                'Free bytes the blob filesystem must keep: below it new uploads are refused (507) and `/readyz` fails, while uploads in progress go on; `0` disables the check.',
              ),
          })
          .strict()
          .prefault({}),
        s3: z
          .object({
            bucket: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe('Bucket of the S3 driver (required with `storage.driver: s3`).'),
            prefix: z
              .string()
              .default('')
              .describe('Key prefix inside the bucket, e.g. `registry`; empty for the bucket root.'),
            region: z.string().min(1).default('us-east-1').describe('Region of the bucket.'),
            endpoint: z
              .url({ protocol: /^https?$/ })
              .nullable()
              .default(null)
              .describe(
                'Endpoint URL for S3-compatible servers (MinIO, Ceph RGW, R2...); `null` for AWS S3.',
              ),
            forcePathStyle: z
              .boolean()
              .default(false)
              .describe(
                'Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key` (MinIO and most self-hosted servers need it).',
              ),
            accessKeyId: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe(
                'Access key; `null` uses the standard AWS credential chain (environment, profile, instance role).',
              ),
            secretAccessKey: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe('Secret key, with `storage.s3.accessKeyId`.'),
            partSize: z
              .number()
              .int()
              .min(5 * 1024 * 1024)
              .default(8 * 1024 * 1024)
              .describe(
                'Multipart part size in bytes (at least 5 MiB); bounds the memory one upload request uses.',
              ),
            redirect: z
              .boolean()
              .default(false)
              .describe(
                'Answer blob GETs with a 307 redirect to a presigned URL, so clients download from the storage directly.',
              ),
            redirectExpiry: duration.prefault('20m').describe('Lifetime of presigned redirect URLs.'),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    metadata: z
      .object({
        driver: z
          .enum(['sqlite', 'postgres'])
          .default('sqlite')
          .describe(
            'Metadata database: `sqlite` (the embedded default, one instance) or `postgres` (several instances).',
          ),
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
        postgres: z
          .object({
            url: z
              .string()
              .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL')
              .nullable()
              .default(null)
              .describe(
                'PostgreSQL connection URL, e.g. `postgres://berth:secret@db:5432/berth` (required with `metadata.driver: postgres`).',
              ),
            schema: z
              .string()
              .regex(/^[a-z_][a-z0-9_]*$/, 'expected a schema name [a-z_][a-z0-9_]*')
              .nullable()
              .default(null)
              .describe(
                "Schema for Berth's tables (created if missing); `null` uses the server's default search path.",
              ),
            maxConnections: z
              .number()
              .int()
              .positive()
              .default(10)
              .describe('Connection pool size per instance.'),
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
        sparseManifests: z
          .boolean()
          .default(false)
          .describe(
            'Accept pushed manifests whose layers, config or index children are not in the repository (sparse manifests: an index without all its platforms, as some mirroring tools push). Namespaces cached from an upstream always store them.',
          ),
      })
      .strict()
      .prefault({}),
    quotas: z
      .object({
        warningThreshold: z
          .number()
          .gt(0)
          .max(1)
          .default(0.85)
          .describe(
            'A `quota.warning` event is stored when a push takes a namespace from below to at least this fraction of its storage quota.',
          ),
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
    gc: z
      .object({
        schedule: z
          .string()
          .default('*/30 * * * *')
          .refine((v) => v === 'off' || isCron(v), 'expected a cron expression (UTC) or `off`')
          .describe(
            'When garbage collection runs (a cron expression in UTC; `off` runs it only on demand, from `berth gc` or `POST /api/v1/gc`). It runs online: pushes and pulls go on.',
          ),
        blobGracePeriod: duration
          .prefault('24h')
          .describe(
            'A blob no manifest references is deleted only this long after it was last uploaded or mounted: covers uploads whose manifest has not arrived yet.',
          ),
        manifestGracePeriod: duration
          .prefault('24h')
          .describe(
            'A new manifest without a tag, a parent index or a subject is deleted only this long after it was pushed (index children and artifacts pushed by digest before what refers to them). A manifest that loses its last tag is reviewed at once.',
          ),
        orphanedReferrers: z
          .enum(['delete', 'keep'])
          .default('delete')
          .describe(
            'What happens to an untagged referrer (signature, SBOM, attestation) whose subject manifest is gone: `delete` collects it, `keep` keeps it.',
          ),
        sweepStorage: z
          .boolean()
          .default(true)
          .describe(
            'Each run also lists blob storage and removes bytes no metadata knows (left by a crash) once older than `gc.blobGracePeriod`. Turn off on very large object stores and run it with `berth gc` from time to time.',
          ),
        historyRetention: duration
          .prefault('30d')
          .describe(
            'Each run deletes dead jobs, webhook delivery records and garbage collection runs older than this; `0` keeps them.',
          ),
      })
      .strict()
      .prefault({}),
    retention: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            "Run every namespace's retention policy on `retention.schedule` (a job; needs `jobs.enabled`). On-demand runs through the API and the CLI work either way.",
          ),
        schedule: z
          .string()
          .refine(isCron, 'expected a cron expression such as `0 3 * * *`')
          .default('0 3 * * *')
          .describe(
            'When the scheduled retention run starts: a five- or six-field cron expression, in UTC (default daily at 03:00).',
          ),
      })
      .strict()
      .prefault({}),
    audit: z
      .object({
        retention: duration
          .prefault('365d')
          .describe('Garbage collection runs delete audit events older than this; `0` keeps them forever.'),
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
        trustedProxies: z
          .array(
            z.string().refine((v) => parseAddressRange(v) !== null, {
              error: (issue) =>
                `${JSON.stringify(issue.input)} is not an IP address or CIDR range such as 10.0.0.0/8 or 2001:db8::/32`,
            }),
          )
          .default([])
          .describe(
            'Addresses and CIDR ranges of reverse proxies whose `X-Forwarded-For` is believed: the client address is the rightmost address of the chain not in this list. Empty: trust nobody, the client is the peer.',
          ),
        headersTimeout: positiveDuration
          .prefault('30s')
          .describe(
            'A connection that has not sent complete request headers within this time gets 408 and is closed; also bounds the TLS handshake.',
          ),
        keepAliveTimeout: positiveDuration
          .prefault('75s')
          .describe('An idle keep-alive connection (no request in progress) is closed after this time.'),
        bodyIdleTimeout: positiveDuration
          .prefault('60s')
          .describe(
            'A request whose body stops arriving (no bytes received for this time while the server waits for them) is cut and its connection closed; not a limit on the whole request.',
          ),
        maxConnections: z
          .number()
          .int()
          .positive()
          .default(4096)
          .describe('Most open client connections; connections beyond it are closed at once.'),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        mode: z
          .enum(['none', 'basic', 'token'])
          .default('none')
          .describe(
            'Access control: `none` (open registry: anyone may push, pull and delete), `basic` (HTTP Basic challenge, for simple clients) or `token` (Docker token authentication with the built-in token service; Basic credentials are accepted on /v2 too).',
          ),
        htpasswd: z
          .object({
            path: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe(
                'An htpasswd file (bcrypt entries) whose users may log in too, as with `registry:2`; reloaded when it changes.',
              ),
          })
          .strict()
          .prefault({}),
        token: z
          .object({
            realm: z
              .url({ protocol: /^https?$/ })
              .nullable()
              .default(null)
              .describe(
                'Token endpoint URL sent in challenges; default `<base URL>/auth/token` (the built-in service). Set it to an external issuer together with `auth.token.trust`.',
              ),
            service: z
              .string()
              .min(1)
              .default('berth')
              .describe('The service name in challenges and the `aud` of tokens.'),
            issuer: z
              .string()
              .min(1)
              .default('berth')
              .describe('The `iss` of tokens the built-in service issues.'),
            expiration: duration.prefault('5m').describe('Lifetime of access tokens (at least 60 s).'),
            refreshExpiration: duration
              .prefault('90d')
              .describe('Lifetime of refresh tokens (`docker login` identity tokens, `offline_token`).'),
            trustJwksUrl: z
              .url({ protocol: /^https?$/ })
              .nullable()
              .default(null)
              .describe('Also accept tokens signed by the keys at this JWKS URL (an external token issuer).'),
            trustCertBundle: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe(
                "Also accept tokens whose `x5c` chain ends at, or whose key is, a certificate in this PEM bundle (as distribution's `rootcertbundle`).",
              ),
            trustIssuer: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe('The `iss` required of externally issued tokens.'),
          })
          .strict()
          .prefault({}),
        adminUsername: z
          .string()
          .min(1)
          .default('admin')
          .describe(
            'Username of the first administrator, created on first start when `BERTH_ADMIN_PASSWORD` is set and no administrator exists.',
          ),
        personalNamespaces: z
          .boolean()
          .default(true)
          .describe('Every user is admin of the namespace named like them (as on Docker Hub).'),
        maxFailedLogins: z
          .number()
          .int()
          .positive()
          .default(10)
          .describe(
            'Failed logins allowed per login name and source address pair within `auth.failedLoginWindow`; then that name is refused from that address (429 with Retry-After) until the oldest failure leaves the window. Other addresses and other names are not affected.',
          ),
        maxFailedLoginsPerAddress: z
          .number()
          .int()
          .positive()
          .default(100)
          .describe(
            'Failed logins allowed per source address, of every login name together, within `auth.failedLoginWindow` (a ceiling against password spraying); then every login from that address is refused for a while.',
          ),
        failedLoginWindow: duration
          .prefault('15m')
          .describe(
            'The window of the failed-login limits. The counters live in the metadata database, so they hold across every instance.',
          ),
        loginAuditInterval: duration
          .prefault('1h')
          .describe(
            'A successful token login of one account from one address is written to the audit log at most once per this interval per instance (clients fetch a token for nearly every operation); `0` records every one. Failed logins are always recorded.',
          ),
        cacheTtl: duration
          .prefault('5s')
          .describe(
            "How long a caller's roles are cached; a permission change takes effect within this bound on every instance.",
          ),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({
        certificate: z
          .string()
          .min(1)
          .nullable()
          .default(null)
          .describe(
            'PEM certificate (chain) file; with `tls.key`, Berth serves HTTPS only. Reloaded when the files change, without dropping connections.',
          ),
        key: z
          .string()
          .min(1)
          .nullable()
          .default(null)
          .describe('PEM private key file of `tls.certificate`.'),
        clientCA: z
          .string()
          .min(1)
          .nullable()
          .default(null)
          .describe(
            "PEM bundle of CAs whose client certificates are accepted (mutual TLS); the certificate's common name names a user or robot.",
          ),
        clientAuth: z
          .enum(['none', 'optional', 'require'])
          .default('none')
          .describe('Client certificates: `none`, `optional` (verified when sent) or `require`.'),
        reloadInterval: duration
          .prefault('10s')
          .describe('How often certificate files are checked for changes.'),
      })
      .strict()
      .prefault({}),
    jobs: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            'Run background jobs (webhook deliveries, upload purge, and every later background task) on this instance. Instances sharing a database share the queue; turn it off on instances that should only serve requests.',
          ),
        concurrency: z.number().int().positive().default(4).describe('Jobs this instance runs at once.'),
        pollInterval: positiveDuration
          .prefault('1s')
          .describe(
            'How often an idle runner looks for due jobs (work enqueued on this instance starts at once).',
          ),
        leaseDuration: positiveDuration
          .prefault('30s')
          .describe(
            "How long a claimed job stays claimed without renewal; a running job renews its lease every third of it, so a dead instance's jobs are taken over by another after at most this time.",
          ),
        retention: duration
          .prefault('7d')
          .describe(
            'Succeeded and cancelled jobs, and dispatched events, are deleted after this time; dead jobs are kept until retried or cancelled.',
          ),
      })
      .strict()
      .prefault({}),
    proxy: z
      .object({
        upstreams: z
          .array(configUpstreamSchema)
          .max(100)
          .default([])
          .describe(
            'Upstream registries cached by the pull-through cache, in addition to those added through the API (see [mirroring.md](mirroring.md) for the fields). In the environment: a JSON array.',
          ),
      })
      .strict()
      .prefault({}),
    secrets: z
      .object({
        key: z
          .string()
          .min(16)
          .nullable()
          .default(null)
          .describe(
            'Key material (16 characters or more) that encrypts stored credentials of upstream and replication registries. Every instance sharing a database needs the same key; changing it makes stored credentials unreadable. Prefer the environment variable to the file.',
          ),
        keyFile: z
          .string()
          .min(1)
          .nullable()
          .default(null)
          .describe(
            'A file holding the key material, when `secrets.key` is not set. Default: `<data>/secret.key`, created with a random key on first use when metadata is in SQLite; with PostgreSQL, set `secrets.key` or this.',
          ),
      })
      .strict()
      .prefault({}),
    replication: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            'Run replication executions and their triggers (schedules, push events) on this instance (jobs; needs `jobs.enabled`). The admin API and the CLI manage policies either way.',
          ),
        concurrency: z
          .number()
          .int()
          .min(1)
          .max(64)
          .default(4)
          .describe(
            'Tasks run at once against one remote registry on one instance, for remote registries created without their own `concurrency`.',
          ),
        scheduleCheck: positiveDuration
          .prefault('1m')
          .describe('How often the schedules of scheduled replication policies are checked.'),
      })
      .strict()
      .prefault({}),
    webhooks: z
      .object({
        allowedHosts: z
          .array(z.string().min(1))
          .default([])
          .describe(
            'Host names or IP addresses webhook endpoints may use although they are (or resolve to) loopback, private, link-local or cloud metadata addresses, which are otherwise refused.',
          ),
        timeout: positiveDuration
          .prefault('10s')
          .describe('A delivery that has not received a complete response within this time has failed.'),
        deliveryLogSize: z
          .number()
          .int()
          .positive()
          .default(50)
          .describe('Delivery attempts kept per endpoint in its delivery log.'),
        secretGracePeriod: duration
          .prefault('24h')
          .describe(
            "After an endpoint's secret is rotated, deliveries are signed with the old secret too for this long.",
          ),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        enabled: z.boolean().default(true).describe('Serve Prometheus metrics at `/metrics`.'),
        listen: listenAddress
          .nullable()
          .default(null)
          .describe(
            'Serve `/metrics` on this separate address (`HOST:PORT`, plain HTTP) instead of the registry listener.',
          ),
        token: z
          .string()
          .min(16)
          .nullable()
          .default(null)
          .describe('When set, `/metrics` requires `Authorization: Bearer <token>` (16 characters or more).'),
      })
      .strict()
      .prefault({}),
    tracing: z
      .object({
        enabled: z
          .boolean()
          .default(false)
          .describe(
            'Export OpenTelemetry traces (HTTP requests, storage and database operations) over OTLP/HTTP; the exporter is configured by the standard `OTEL_EXPORTER_OTLP_*` environment variables, the service name by `OTEL_SERVICE_NAME` (default `berth`).',
          ),
        sampleRatio: z
          .number()
          .min(0)
          .max(1)
          .default(1)
          .describe(
            "Share of new traces recorded (0 to 1); a request carrying a W3C `traceparent` follows its parent's sampling decision.",
          ),
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
  .strict()
  .superRefine((c, ctx) => {
    if (c.storage.driver === 's3' && c.storage.s3.bucket === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['storage', 's3', 'bucket'],
        message: 'required with storage.driver: s3',
      });
    }
    if ((c.storage.s3.accessKeyId === null) !== (c.storage.s3.secretAccessKey === null)) {
      ctx.addIssue({
        code: 'custom',
        path: ['storage', 's3', 'secretAccessKey'],
        message: 'accessKeyId and secretAccessKey go together',
      });
    }
    if (c.metadata.driver === 'postgres' && c.metadata.postgres.url === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['metadata', 'postgres', 'url'],
        message: 'required with metadata.driver: postgres',
      });
    }
    if ((c.tls.certificate === null) !== (c.tls.key === null)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls', c.tls.key === null ? 'key' : 'certificate'],
        message: 'tls.certificate and tls.key go together',
      });
    }
    if (c.tls.clientAuth !== 'none' && (c.tls.clientCA === null || c.tls.certificate === null)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls', 'clientCA'],
        message: 'client certificates need tls.clientCA and a server certificate',
      });
    }
    if (c.auth.token.expiration < 60_000) {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'token', 'expiration'],
        message: 'must be at least 60s',
      });
    }
  });

/** The input shape (what YAML may contain). */
export type ConfigInput = z.input<typeof configSchema>;
/** The validated configuration with defaults applied and durations in milliseconds. */
export type Config = z.output<typeof configSchema>;
