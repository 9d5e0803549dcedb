/**
 * Harbor's Pluggable Scanner API (https://github.com/goharbor/pluggable-scanner-spec, v1.1): the media types and
 * the documents an adapter exchanges, as zod schemas. The schemas are lenient where adapters are known to differ
 * (Go adapters write `null` for empty lists, Trivy adds `preferred_cvss`, `purl` and `vendor_attributes`) and
 * strict about types: a field of the wrong type makes the document malformed.
 */
import { z } from 'zod';

/** The media type of a scan request body. */
export const SCAN_REQUEST_MIME_TYPE = 'application/vnd.scanner.adapter.scan.request+json; version=1.0';
/** The media type of a scan response (`{id}`). */
export const SCAN_RESPONSE_MIME_TYPE = 'application/vnd.scanner.adapter.scan.response+json; version=1.0';
/** The media type of the adapter's metadata. */
export const METADATA_MIME_TYPE = 'application/vnd.scanner.adapter.metadata+json; version=1.0';
/** The media type of an adapter's error body (`{error: {message}}`). */
export const ERROR_MIME_TYPE = 'application/vnd.scanner.adapter.error+json; version=1.0';
/** The vulnerability report media type current adapters produce and Harbor asks for. */
export const VULNERABILITY_REPORT_MIME_TYPE = 'application/vnd.security.vulnerability.report; version=1.1';
/** The report media type the v1.1 specification itself names. */
export const HARBOR_REPORT_MIME_TYPE_V1_1 =
  'application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.1';
/** Artifact media types Berth asks adapters to scan. */
export const OCI_MANIFEST_MIME_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST_MIME_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';

const text = z.string().max(100_000);
const short = z.string().max(1000);

/** A scanner's name, vendor and version. */
export const scannerSchema = z.object({
  name: short,
  vendor: short.nullish(),
  version: short.nullish(),
});

/** What a scanner consumes and produces. */
export const capabilitySchema = z.object({
  /** `vulnerability` or `sbom` (later adapters); absent means vulnerability. */
  type: short.nullish(),
  consumes_mime_types: z.array(short).max(100),
  produces_mime_types: z.array(short).max(100),
});

/** `GET /api/v1/metadata`. */
export const metadataSchema = z.object({
  scanner: scannerSchema,
  capabilities: z.array(capabilitySchema).max(100),
  properties: z.record(short, text).nullish(),
});
export type ScannerAdapterMetadata = z.infer<typeof metadataSchema>;

/** `POST /api/v1/scan` answer. */
export const scanResponseSchema = z.object({ id: z.string().min(1).max(1000) });

/** The artifact a scan or report is about. */
export const artifactSchema = z.object({
  repository: short.nullish(),
  digest: short.nullish(),
  tag: short.nullish(),
  mime_type: short.nullish(),
});

// zod 4 numbers are finite: NaN and Infinity are rejected.
const score = z.number().nullish();

/** Trivy's preferred CVSS (by the source it trusts most for the package's ecosystem). */
export const cvssDetailsSchema = z.object({
  score_v2: score,
  score_v3: score,
  vector_v2: short.nullish(),
  vector_v3: short.nullish(),
});

/** One vulnerability of one package. */
export const vulnerabilitySchema = z.object({
  id: z.string().min(1).max(1000),
  package: short,
  version: short,
  fix_version: short.nullish(),
  /** `Unknown`, `Negligible`, `Low`, `Medium`, `High`, `Critical` (Harbor itself also knows `None`). */
  severity: short.nullish(),
  description: text.nullish(),
  links: z.array(short).max(1000).nullish(),
  purl: short.nullish(),
  cve3_score: z.union([short, z.number()]).nullish(),
  cvss3_vector: short.nullish(),
  preferred_cvss: cvssDetailsSchema.nullish(),
  vendor_attributes: z.record(short, z.unknown()).nullish(),
});
export type HarborVulnerability = z.infer<typeof vulnerabilitySchema>;

/** `GET /api/v1/scan/{id}/report` with a vulnerability report media type. */
export const reportSchema = z.object({
  generated_at: short.nullish(),
  artifact: artifactSchema.nullish(),
  scanner: scannerSchema.nullish(),
  severity: short.nullish(),
  vulnerabilities: z.array(vulnerabilitySchema).nullish(),
});
export type HarborVulnerabilityReport = z.infer<typeof reportSchema>;

/** An adapter's error body. */
export const errorResponseSchema = z.object({
  error: z.object({ message: text.nullish() }).nullish(),
});

/** A scan request, as sent to `POST /api/v1/scan`. */
export interface ScanRequest {
  readonly registry: {
    /** The registry's base URL the adapter pulls from, e.g. `https://registry.example`. */
    readonly url: string;
    /** The `Authorization` header value the adapter sends to the registry, e.g. `Bearer <token>`. */
    readonly authorization?: string;
  };
  readonly artifact: {
    readonly repository: string;
    readonly digest: string;
    readonly tag?: string;
    readonly mime_type: string;
  };
}
