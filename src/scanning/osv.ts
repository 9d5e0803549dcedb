/**
 * OSV records (https://ossf.github.io/osv-schema/, schema 1.x) parsed into a typed {@link Advisory}.
 *
 * Only what a scanner uses is kept; unknown fields are ignored, as the schema allows producers to add them.
 * Free text is truncated ({@link MAX_DETAILS_CHARS}, {@link MAX_SUMMARY_CHARS}) so one oversized record cannot
 * bloat what is stored per finding. Ecosystem strings are split into their base ecosystem and release suffix
 * (`Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04:LTS`, `Ubuntu:Pro:18.04:LTS`).
 */
import { z } from 'zod';
import { schemaProblem } from '../util/schema-problem.ts';

/** The longest `details` kept, in UTF-16 code units; longer text is cut and ends in `…`. */
export const MAX_DETAILS_CHARS = 10_000;
/** The longest `summary` kept. */
export const MAX_SUMMARY_CHARS = 1_000;

/** A record that is not a valid OSV document; `field` is the dotted path of the offending field, if one is. */
export class OsvError extends Error {
  readonly code = 'OSV_INVALID_RECORD';
  constructor(
    message: string,
    readonly field: string | undefined,
  ) {
    super(message);
    this.name = 'OsvError';
  }
}

/** The severity types of the schema's `severity[].type`. */
export type SeverityType = 'CVSS_V2' | 'CVSS_V3' | 'CVSS_V4' | 'Ubuntu';

/** One `severity[]` entry: a CVSS vector for the CVSS types, a priority word (`high`...) for `Ubuntu`. */
export interface SeverityEntry {
  readonly type: SeverityType;
  readonly score: string;
}

/** An `affected[].package`, its ecosystem split into base and release. */
export interface AffectedPackage {
  /** The ecosystem string as written (`Debian:12`). */
  readonly ecosystem: string;
  /** The ecosystem without release suffix (`Debian`). */
  readonly base: string;
  /** The release suffix after the first `:` (`12`, `v3.19`, `22.04:LTS`), or null when there is none. */
  readonly release: string | null;
  readonly name: string;
  readonly purl: string | null;
}

/** One range event; exactly one kind per event, as the schema requires. */
export interface RangeEvent {
  readonly kind: 'introduced' | 'fixed' | 'last_affected' | 'limit';
  readonly version: string;
}

/** An `affected[].ranges[]` entry. */
export interface AffectedRange {
  readonly type: 'ECOSYSTEM' | 'SEMVER' | 'GIT';
  /** The repository of a GIT range, else null. */
  readonly repo: string | null;
  readonly events: readonly RangeEvent[];
}

/** An `affected[]` entry. */
export interface Affected {
  /** Null when the entry names no package (GIT-only entries). */
  readonly package: AffectedPackage | null;
  readonly ranges: readonly AffectedRange[];
  /** The explicitly enumerated affected versions. */
  readonly versions: readonly string[];
  readonly severity: readonly SeverityEntry[];
  /**
   * The rating words this entry's `ecosystem_specific` and `database_specific` carry under `severity`,
   * `urgency` (Debian) or `ubuntu_priority` (Ubuntu), unmapped.
   */
  readonly ratings: readonly string[];
}

/** A `references[]` entry. */
export interface Reference {
  readonly type: string;
  readonly url: string;
}

/** A parsed OSV record. Timestamps are kept as the RFC 3339 strings of the record. */
export interface Advisory {
  readonly id: string;
  readonly aliases: readonly string[];
  readonly upstream: readonly string[];
  readonly modified: string;
  readonly published: string | null;
  readonly withdrawn: string | null;
  readonly summary: string | null;
  readonly details: string | null;
  readonly severity: readonly SeverityEntry[];
  readonly affected: readonly Affected[];
  readonly references: readonly Reference[];
  /** The rating words of the top-level `database_specific` (`severity`, as GHSA's `MODERATE`), unmapped. */
  readonly ratings: readonly string[];
}

// RFC 3339 as the schema's timestamp pattern has it (UTC, `Z`, optional fraction).
const timestamp = z
  .string()
  .regex(/^\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\d(\.\d+)?Z$/, 'expected an RFC 3339 UTC timestamp');
const text = z.string().max(1_000_000);
const shortText = z.string().min(1).max(1000);

const severitySchema = z.object({
  type: z.string().min(1).max(100),
  score: z.string().min(1).max(1000),
});

const eventSchema = z
  .object({
    introduced: shortText.optional(),
    fixed: shortText.optional(),
    last_affected: shortText.optional(),
    limit: shortText.optional(),
  })
  .refine(
    (e) => [e.introduced, e.fixed, e.last_affected, e.limit].filter((v) => v !== undefined).length === 1,
    'exactly one of introduced, fixed, last_affected, limit is required',
  );

const rangeSchema = z
  .object({
    type: z.enum(['ECOSYSTEM', 'SEMVER', 'GIT']),
    repo: z.string().min(1).max(2000).optional(),
    events: z.array(eventSchema).min(1).max(10_000),
  })
  .refine((r) => r.events.some((e) => e.introduced !== undefined), {
    message: 'at least one introduced event is required',
    path: ['events'],
  })
  .refine(
    (r) =>
      !(r.events.some((e) => e.fixed !== undefined) && r.events.some((e) => e.last_affected !== undefined)),
    {
      message: 'a range has fixed or last_affected events, not both',
      path: ['events'],
    },
  )
  .refine((r) => r.type !== 'GIT' || r.repo !== undefined, {
    message: 'repo is required for a GIT range',
    path: ['repo'],
  });

// Free-form objects: only the rating keys are read, and only when they are strings.
const specificSchema = z.record(z.string(), z.unknown()).optional();

const affectedSchema = z.object({
  package: z
    .object({
      ecosystem: shortText,
      name: shortText,
      purl: z.string().max(2000).optional(),
    })
    .optional(),
  ranges: z.array(rangeSchema).max(10_000).optional(),
  versions: z.array(z.string().max(1000)).max(1_000_000).optional(),
  severity: z.array(severitySchema).max(100).nullish(),
  ecosystem_specific: specificSchema,
  database_specific: specificSchema,
});

const recordSchema = z.object({
  id: shortText,
  modified: timestamp,
  published: timestamp.optional(),
  withdrawn: timestamp.optional(),
  aliases: z.array(shortText).max(10_000).nullish(),
  upstream: z.array(shortText).max(10_000).nullish(),
  summary: text.optional(),
  details: text.optional(),
  severity: z.array(severitySchema).max(100).nullish(),
  affected: z.array(affectedSchema).max(100_000).nullish(),
  references: z
    .array(z.object({ type: z.string().min(1).max(100), url: z.string().min(1).max(10_000) }))
    .max(100_000)
    .nullish(),
  database_specific: specificSchema,
});

const SEVERITY_TYPES: readonly string[] = ['CVSS_V2', 'CVSS_V3', 'CVSS_V4', 'Ubuntu'];
const RATING_KEYS = ['severity', 'urgency', 'ubuntu_priority'] as const;

/**
 * Splits an OSV ecosystem string at its first `:` into the base ecosystem and the release suffix
 * (`Debian:12` → Debian, 12; `Ubuntu:Pro:18.04:LTS` → Ubuntu, Pro:18.04:LTS; `npm` → npm, null).
 */
export function splitEcosystem(ecosystem: string): { base: string; release: string | null } {
  const colon = ecosystem.indexOf(':');
  if (colon < 0) return { base: ecosystem, release: null };
  return { base: ecosystem.slice(0, colon), release: ecosystem.slice(colon + 1) || null };
}

function truncate(value: string | undefined, max: number): string | null {
  if (value === undefined) return null;
  return value.length <= max ? value : `${value.slice(0, max - 1)}…`;
}

function ratingsOf(...objects: (Record<string, unknown> | undefined)[]): string[] {
  const ratings: string[] = [];
  for (const object of objects) {
    for (const key of RATING_KEYS) {
      const value = object?.[key];
      if (typeof value === 'string' && value.length > 0 && value.length <= 100) ratings.push(value);
    }
  }
  return ratings;
}

// Unknown severity types are passed over rather than rejected: they only inform the rating, and a newer
// schema may add types.
function severities(entries: readonly { type: string; score: string }[] | null | undefined): SeverityEntry[] {
  return (entries ?? []).filter((e): e is SeverityEntry => SEVERITY_TYPES.includes(e.type));
}

function eventOf(e: z.infer<typeof eventSchema>): RangeEvent {
  if (e.introduced !== undefined) return { kind: 'introduced', version: e.introduced };
  if (e.fixed !== undefined) return { kind: 'fixed', version: e.fixed };
  if (e.last_affected !== undefined) return { kind: 'last_affected', version: e.last_affected };
  return { kind: 'limit', version: e.limit ?? '' };
}

/**
 * Parses one OSV record, given as JSON text or as an already parsed value, into an {@link Advisory}. Throws
 * {@link OsvError} (and nothing else) when the text is not JSON or the record breaks the schema: `id` and
 * `modified` are required, timestamps must be RFC 3339 UTC, each event carries exactly one of introduced/fixed/
 * last_affected/limit, each range has an `introduced` event and not both `fixed` and `last_affected`, GIT ranges
 * name their `repo`.
 */
export function parseAdvisory(input: string | unknown): Advisory {
  try {
    let value: unknown = input;
    if (typeof input === 'string') {
      try {
        value = JSON.parse(input);
      } catch (error) {
        throw new OsvError(`record: not JSON (${(error as Error).message})`, undefined);
      }
    }
    const parsed = recordSchema.safeParse(value);
    if (!parsed.success) {
      const problem = schemaProblem(parsed.error, 'record');
      throw new OsvError(problem.message, problem.field);
    }
    const r = parsed.data;
    return {
      id: r.id,
      aliases: r.aliases ?? [],
      upstream: r.upstream ?? [],
      modified: r.modified,
      published: r.published ?? null,
      withdrawn: r.withdrawn ?? null,
      summary: truncate(r.summary, MAX_SUMMARY_CHARS),
      details: truncate(r.details, MAX_DETAILS_CHARS),
      severity: severities(r.severity),
      affected: (r.affected ?? []).map((a) => ({
        package:
          a.package === undefined
            ? null
            : {
                ecosystem: a.package.ecosystem,
                ...splitEcosystem(a.package.ecosystem),
                name: a.package.name,
                purl: a.package.purl ?? null,
              },
        ranges: (a.ranges ?? []).map((range) => ({
          type: range.type,
          repo: range.repo ?? null,
          events: range.events.map(eventOf),
        })),
        versions: a.versions ?? [],
        severity: severities(a.severity),
        ratings: ratingsOf(a.ecosystem_specific, a.database_specific),
      })),
      references: r.references ?? [],
      ratings: ratingsOf(r.database_specific),
    };
  } catch (error) {
    if (error instanceof OsvError) throw error;
    throw new OsvError(`record: ${(error as Error).message}`, undefined);
  }
}
