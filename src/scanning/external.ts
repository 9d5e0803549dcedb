/**
 * Scans by external scanners behind Harbor's Pluggable Scanner API v1.1 (`harbor/client.ts`): a scan request
 * carrying a short-lived token that may only pull the scanned repository, then the report, polled until ready,
 * as a ScanReport. The adapter's own credentials are stored sealed and opened per scan.
 */
import { PermanentJobError, RetryLaterError } from '../jobs/job.ts';
import type { ScannerRecord } from '../metadata/scan-store.ts';
import type { ManifestRecord } from '../metadata/store.ts';
import type { SecretBox } from '../remote/secret-box.ts';
import { HarborScannerClient } from './harbor/client.ts';
import { ScannerError } from './harbor/errors.ts';
import { toScanReport } from './harbor/findings.ts';
import type { ScanReport } from './report.ts';
import type { ExternalScanning } from './service.ts';

export interface HarborScanningDeps {
  /** Opens the sealed adapter credentials. */
  readonly secrets: Pick<SecretBox, 'open'> | null;
  /** The registry's base URL as the adapter reaches it (`publicUrl`, else the listen address). */
  registryUrl(): string;
  /**
   * A bearer token that may pull `repository` only, for the scanner named `scanner`; null when the registry
   * needs none (access control off) or cannot issue one.
   */
  pullToken(scanner: string, repository: string): Promise<string | null>;
  /** How long to wait for a report (ms). Default 10 min. */
  readonly maxWaitMs?: number;
  /** Client factory (tests); default `new HarborScannerClient(options)`. */
  readonly client?: (options: ConstructorParameters<typeof HarborScannerClient>[0]) => HarborScannerClient;
}

/** How long a scan waits before retrying when the adapter is unreachable or failing. */
const RETRY_AFTER_MS = 30_000;

export class HarborScanning implements ExternalScanning {
  constructor(private readonly deps: HarborScanningDeps) {}

  async scan(scanner: ScannerRecord, manifest: ManifestRecord, signal: AbortSignal): Promise<ScanReport> {
    const authorization =
      scanner.authorization === null || this.deps.secrets === null
        ? undefined
        : await this.deps.secrets.open(scanner.authorization);
    const options = { url: scanner.url, ...(authorization !== undefined ? { authorization } : {}) };
    const client = this.deps.client?.(options) ?? new HarborScannerClient(options);
    try {
      const metadata = await client.metadata({ signal });
      const token = await this.deps.pullToken(scanner.name, manifest.repository);
      const id = await client.requestScan(
        {
          registry: {
            url: this.deps.registryUrl(),
            ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
          },
          artifact: {
            repository: manifest.repository,
            digest: manifest.digest,
            mime_type: manifest.mediaType,
          },
        },
        { signal },
      );
      const report = await client.pollReport(id, { signal, maxWaitMs: this.deps.maxWaitMs ?? 600_000 });
      return toScanReport(report, metadata);
    } catch (e) {
      if (!(e instanceof ScannerError)) throw e;
      if (e.code === 'ABORTED') throw e;
      // A refusal (4xx other than 408/429) or a report that cannot be read will not change by retrying; an
      // unreachable, failing or slow adapter may recover.
      const transient =
        e.code === 'NETWORK' ||
        e.code === 'TIMEOUT' ||
        e.code === 'REPORT_TIMEOUT' ||
        (e.status !== null && (e.status >= 500 || e.status === 408 || e.status === 429));
      if (transient) {
        throw new RetryLaterError(
          `scanner ${scanner.name}: ${e.message}`,
          new Date(Date.now() + RETRY_AFTER_MS),
        );
      }
      throw new PermanentJobError(`scanner ${scanner.name}: ${e.message}`);
    }
  }
}
