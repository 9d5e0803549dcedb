/**
 * The Harbor Pluggable Scanner API client (`src/scanning/harbor/`) against a real HTTP adapter double, and the
 * mapping of Harbor reports to Berth findings.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createServer } from 'node:net';
import { HarborScannerClient, parseRefreshAfter } from '../../src/scanning/harbor/client.ts';
import { ScannerError, type ScannerErrorCode } from '../../src/scanning/harbor/errors.ts';
import {
  harborScore,
  harborSeverity,
  parseHarborReport,
  scannerInfo,
  toFindings,
  toScanReport,
} from '../../src/scanning/harbor/findings.ts';
import {
  HARBOR_REPORT_MIME_TYPE_V1_1,
  OCI_MANIFEST_MIME_TYPE,
  VULNERABILITY_REPORT_MIME_TYPE,
  type HarborVulnerability,
  type ScanRequest,
} from '../../src/scanning/harbor/protocol.ts';
import { summarize } from '../../src/scanning/report.ts';
import {
  DEFAULT_METADATA,
  SCAN_REQUEST_TYPE,
  startHarborScanner,
  type HarborScannerOptions,
  type RecordedScanRequest,
} from '../helpers/harbor-scanner.ts';

const DIGEST = 'sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b';

const scanRequest = (token = 'eyJhbGciOiJFUzI1NiJ9.c2Nhbg.sig'): ScanRequest => ({
  registry: { url: 'https://registry.example:5000', authorization: `Bearer ${token}` },
  artifact: {
    repository: 'library/debian',
    digest: DIGEST,
    tag: 'bookworm',
    mime_type: OCI_MANIFEST_MIME_TYPE,
  },
});

/** A report shaped as the Trivy adapter writes it, for the artifact of `request`. */
function trivyReport(request: RecordedScanRequest): unknown {
  return {
    generated_at: '2026-12-08T01:00:00.123456789Z',
    artifact: { ...request.body.artifact },
    scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.58.1' },
    severity: 'High',
    vulnerabilities: [
      {
        id: 'CVE-2023-4911',
        package: 'libc6',
        version: '2.36-9+deb12u1',
        fix_version: '2.36-9+deb12u3',
        severity: 'High',
        description:
          "A buffer overflow was discovered in the GNU C Library's dynamic loader ld.so while processing the\nGLIBC_TUNABLES environment variable.",
        links: [
          'https://avd.aquasec.com/nvd/cve-2023-4911',
          'https://access.redhat.com/security/cve/CVE-2023-4911',
        ],
        purl: 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-12.1',
        preferred_cvss: {
          score_v3: 7.8,
          vector_v3: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H',
          vector_v2: '',
        },
        cwe_ids: ['CWE-122'],
        vendor_attributes: {
          CVSS: { nvd: { V3Score: 7.8, V3Vector: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H' } },
        },
        layer: { digest: 'sha256:1f7ce2fa46ab3942feabee654933948821303a5a821789dddab2d8c3df59e227' },
      },
      {
        id: 'CVE-2023-5678',
        package: 'libssl3',
        version: '3.0.11-1~deb12u1',
        fix_version: '3.0.11-1~deb12u2',
        severity: 'Medium',
        description:
          'Generating excessively long X9.42 DH keys or checking excessively long X9.42 DH keys may be very slow.',
        links: ['https://www.openssl.org/news/secadv/20231106.txt'],
        vendor_attributes: { CVSS: { nvd: { V3Score: 5.3 }, redhat: { V3Score: 5.3 } } },
      },
      {
        id: 'CVE-2011-3374',
        package: 'apt',
        version: '2.6.1',
        fix_version: '',
        severity: 'Negligible',
        description: 'It was found that apt-key in apt, all versions, do not correctly validate gpg keys.',
        links: null,
      },
      {
        id: 'CVE-2023-45853',
        package: 'zlib1g',
        version: '1:1.2.13.dfsg-1',
        severity: 'Critical',
        cve3_score: '9.8',
        links: ['https://nvd.nist.gov/vuln/detail/CVE-2023-45853'],
      },
      {
        id: 'CVE-2022-0563',
        package: 'util-linux',
        version: '2.38.1-5+b1',
        severity: 'Unknown',
        links: [],
      },
    ],
  };
}

async function rejectsWith(promise: Promise<unknown>, code: ScannerErrorCode, status: number | null = null) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ScannerError, `not a ScannerError: ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (status !== null) assert.equal(error.status, status);
    return true;
  });
}

async function withDouble(
  options: Partial<HarborScannerOptions>,
  run: (double: Awaited<ReturnType<typeof startHarborScanner>>) => Promise<void>,
) {
  const double = await startHarborScanner({ report: trivyReport, ...options });
  try {
    await run(double);
  } finally {
    await double.close();
  }
}

describe('HarborScannerClient against an adapter', () => {
  it('reads the metadata, sending the configured Authorization to the adapter', async () => {
    await withDouble({ adapterAuthorization: 'Basic YWRtaW46c2VjcmV0' }, async (double) => {
      const client = new HarborScannerClient({ url: double.url, authorization: 'Basic YWRtaW46c2VjcmV0' });
      const metadata = await client.metadata();
      assert.deepEqual(metadata.scanner, DEFAULT_METADATA.scanner);
      assert.deepEqual(
        metadata.capabilities[0]?.consumes_mime_types,
        DEFAULT_METADATA.capabilities[0]!.consumes_mime_types,
      );
      assert.equal(metadata.properties?.['harbor.scanner-adapter/scanner-type'], 'os-package-vulnerability');
      assert.equal(
        double.requests[0]?.headers.accept,
        'application/vnd.scanner.adapter.metadata+json; version=1.0',
      );
      const stranger = new HarborScannerClient({ url: double.url, authorization: 'Bearer wrong' });
      await rejectsWith(stranger.metadata(), 'HTTP_STATUS', 401);
    });
  });

  it('requests a scan, then polls through 302s to the report', async () => {
    await withDouble({ pendingPolls: 2, refreshAfter: '0' }, async (double) => {
      const client = new HarborScannerClient({ url: `${double.url}/` });
      const id = await client.requestScan(scanRequest('token-for-this-scan'));
      assert.equal(double.scanRequests.length, 1);
      const recorded = double.scanRequests[0]!;
      assert.equal(recorded.id, id);
      assert.equal(recorded.contentType, SCAN_REQUEST_TYPE);
      assert.equal(recorded.registryUrl, 'https://registry.example:5000');
      assert.equal(recorded.bearerToken, 'token-for-this-scan');
      assert.deepEqual(recorded.body.artifact, scanRequest().artifact);

      const first = await client.fetchReport(id);
      assert.deepEqual(first, { state: 'pending', refreshAfterMs: 0 });
      const report = await client.pollReport(id, { minRefreshMs: 5 });
      assert.equal(double.polls.get(id), 3);
      assert.equal(report.scanner?.name, 'Trivy');
      assert.equal(report.artifact?.digest, DIGEST);
      assert.equal(report.vulnerabilities?.length, 5);
      const reportRequests = double.requests.filter((r) => r.path.endsWith('/report'));
      for (const r of reportRequests) assert.equal(r.headers.accept, VULNERABILITY_REPORT_MIME_TYPE);
    });
  });

  it('waits as long as Refresh-After says, within the bounds', async () => {
    await withDouble({ pendingPolls: 1, refreshAfter: '1' }, async (double) => {
      const client = new HarborScannerClient({ url: double.url });
      const id = await client.requestScan(scanRequest());
      const start = Date.now();
      await client.pollReport(id, { minRefreshMs: 5 });
      assert.ok(Date.now() - start >= 950, `waited only ${Date.now() - start} ms`);
    });
    await withDouble({ pendingPolls: 2, refreshAfter: '3600' }, async (double) => {
      const client = new HarborScannerClient({ url: double.url });
      const id = await client.requestScan(scanRequest());
      const start = Date.now();
      await client.pollReport(id, { minRefreshMs: 5, maxRefreshMs: 30 });
      assert.ok(Date.now() - start < 2000);
      assert.equal(double.polls.get(id), 3);
    });
    await withDouble({ pendingPolls: 2, refreshAfter: null }, async (double) => {
      const client = new HarborScannerClient({ url: double.url });
      const id = await client.requestScan(scanRequest());
      assert.deepEqual(await client.fetchReport(id), { state: 'pending', refreshAfterMs: null });
      const start = Date.now();
      await client.pollReport(id, { minRefreshMs: 5, defaultRefreshMs: 40 });
      assert.ok(Date.now() - start >= 35);
    });
  });

  it('gives up with REPORT_TIMEOUT when the report stays pending past maxWaitMs', async () => {
    await withDouble({ pendingPolls: 1_000, refreshAfter: '0' }, async (double) => {
      const client = new HarborScannerClient({ url: double.url });
      const id = await client.requestScan(scanRequest());
      const start = Date.now();
      await rejectsWith(client.pollReport(id, { minRefreshMs: 20, maxWaitMs: 200 }), 'REPORT_TIMEOUT');
      assert.ok(Date.now() - start < 1000);
      assert.ok((double.polls.get(id) ?? 0) >= 3);
    });
  });

  it('stops polling when the signal aborts, during a wait or before starting', async () => {
    await withDouble({ pendingPolls: 1_000, refreshAfter: '30' }, async (double) => {
      const client = new HarborScannerClient({ url: double.url });
      const id = await client.requestScan(scanRequest());
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      const start = Date.now();
      await rejectsWith(client.pollReport(id, { signal: controller.signal }), 'ABORTED');
      assert.ok(Date.now() - start < 2000);
      await rejectsWith(client.pollReport(id, { signal: AbortSignal.abort() }), 'ABORTED');
      await rejectsWith(client.metadata({ signal: AbortSignal.abort() }), 'ABORTED');
    });
  });

  it('times out a request the adapter never answers, and aborts one on the signal', async () => {
    await withDouble({}, async (double) => {
      double.failures.metadata = 'hang';
      const client = new HarborScannerClient({ url: double.url, timeoutMs: 150 });
      const start = Date.now();
      await rejectsWith(client.metadata(), 'TIMEOUT');
      assert.ok(Date.now() - start < 2000);
      const patient = new HarborScannerClient({ url: double.url, timeoutMs: 60_000 });
      await rejectsWith(patient.metadata({ signal: AbortSignal.timeout(100) }), 'ABORTED');
      double.failures.metadata = undefined;
      double.failures.report = 'hang';
      const id = await patient.requestScan(scanRequest());
      await rejectsWith(client.pollReport(id), 'TIMEOUT');
    });
  });

  it('turns error statuses into ScannerErrors with the adapter message', async () => {
    await withDouble({}, async (double) => {
      const client = new HarborScannerClient({ url: double.url });
      double.failures.metadata = 'error-500';
      await assert.rejects(client.metadata(), (error: unknown) => {
        assert.ok(error instanceof ScannerError);
        assert.equal(error.code, 'HTTP_STATUS');
        assert.equal(error.status, 500);
        assert.match(error.message, /scanner exploded/);
        return true;
      });
      double.failures.scan = 'error-500';
      await rejectsWith(client.requestScan(scanRequest()), 'HTTP_STATUS', 500);
      double.failures.scan = undefined;
      const id = await client.requestScan(scanRequest());
      double.failures.report = 'error-500';
      await rejectsWith(client.pollReport(id), 'HTTP_STATUS', 500);
      await rejectsWith(client.fetchReport('no-such-scan'), 'NOT_FOUND', 404);
      await rejectsWith(client.pollReport('a/../../metadata'), 'NOT_FOUND', 404);
      // The adapter refuses a report type it does not produce.
      double.failures.report = undefined;
      const picky = new HarborScannerClient({ url: double.url, reportMimeType: 'application/json' });
      await rejectsWith(picky.fetchReport(id), 'HTTP_STATUS', 422);
      const specType = new HarborScannerClient({
        url: double.url,
        reportMimeType: HARBOR_REPORT_MIME_TYPE_V1_1,
      });
      assert.equal((await specType.fetchReport(id)).state, 'ready');
    });
  });

  it('rejects bodies that are not JSON or not the right document', async () => {
    await withDouble({}, async (double) => {
      const client = new HarborScannerClient({ url: double.url });
      double.failures.metadata = 'malformed-json';
      await rejectsWith(client.metadata(), 'BAD_RESPONSE', 200);
      double.failures.scan = 'malformed-json';
      await rejectsWith(client.requestScan(scanRequest()), 'BAD_RESPONSE');
      double.failures.scan = undefined;
      const id = await client.requestScan(scanRequest());
      double.failures.report = 'malformed-json';
      await rejectsWith(client.pollReport(id), 'MALFORMED_REPORT', 200);
    });
    await withDouble({ metadata: { scanner: { name: 7 }, capabilities: [] } }, async (double) => {
      await rejectsWith(new HarborScannerClient({ url: double.url }).metadata(), 'BAD_RESPONSE');
    });
    for (const bad of [
      [],
      null,
      'report',
      { vulnerabilities: {} },
      { vulnerabilities: [{ id: 'CVE-2023-4911', package: 'libc6' }] },
      { vulnerabilities: [{ id: 'CVE-2023-4911', package: 'libc6', version: '1', severity: 3 }] },
      { vulnerabilities: [{ id: 'CVE-2023-4911', package: 'libc6', version: '1', links: 'https://x' }] },
      { scanner: 'Trivy' },
    ]) {
      await withDouble({ report: () => bad }, async (double) => {
        const client = new HarborScannerClient({ url: double.url });
        const id = await client.requestScan(scanRequest());
        await rejectsWith(client.pollReport(id), 'MALFORMED_REPORT', 200);
      });
    }
  });

  it('rejects an answer larger than maxResponseBytes', async () => {
    await withDouble({}, async (double) => {
      const client = new HarborScannerClient({ url: double.url, maxResponseBytes: 64 });
      await rejectsWith(client.metadata(), 'BAD_RESPONSE');
    });
  });

  it('reports an unreachable adapter as NETWORK', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as { port: number };
        probe.close(() => resolve(free));
      });
    });
    const client = new HarborScannerClient({ url: `http://127.0.0.1:${port}` });
    await rejectsWith(client.metadata(), 'NETWORK');
  });

  it('refuses a base URL that is not absolute http(s)', () => {
    for (const url of ['trivy:8080', 'ftp://trivy', '/api'])
      assert.throws(() => new HarborScannerClient({ url }), RangeError);
  });

  it('reads Refresh-After as integer seconds', () => {
    assert.equal(parseRefreshAfter('15'), 15_000);
    assert.equal(parseRefreshAfter(' 2 '), 2000);
    for (const value of [null, '', '1.5', '-1', 'soon', 'Wed, 21 Oct 2015 07:28:00 GMT', '99999999999'])
      assert.equal(parseRefreshAfter(value), null, String(value));
  });
});

describe('Harbor reports as findings', () => {
  let report: unknown;
  before(async () => {
    const double = await startHarborScanner({ report: trivyReport });
    try {
      const client = new HarborScannerClient({ url: double.url });
      report = await client.pollReport(await client.requestScan(scanRequest()));
    } finally {
      await double.close();
    }
  });

  it('maps each vulnerability to a finding', () => {
    const findings = toFindings(report);
    assert.equal(findings.length, 5);
    const glibc = findings.find((f) => f.id === 'CVE-2023-4911');
    assert.deepEqual(glibc, {
      id: 'CVE-2023-4911',
      aliases: [],
      package: {
        ecosystem: 'Debian',
        name: 'libc6',
        version: '2.36-9+deb12u1',
        purl: 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-12.1',
      },
      fixedVersion: '2.36-9+deb12u3',
      severity: 'high',
      score: 7.8,
      summary:
        "A buffer overflow was discovered in the GNU C Library's dynamic loader ld.so while processing the",
      links: [
        'https://avd.aquasec.com/nvd/cve-2023-4911',
        'https://access.redhat.com/security/cve/CVE-2023-4911',
      ],
    });
    const apt = findings.find((f) => f.id === 'CVE-2011-3374');
    assert.equal(apt?.severity, 'low');
    assert.equal(apt?.fixedVersion, null);
    assert.deepEqual(apt?.links, []);
    assert.equal(apt?.package.ecosystem, 'unknown');
    const zlib = findings.find((f) => f.id === 'CVE-2023-45853');
    assert.equal(zlib?.severity, 'critical');
    assert.equal(zlib?.score, 9.8);
    assert.equal(zlib?.summary, null);
    assert.equal(findings.find((f) => f.id === 'CVE-2023-5678')?.score, 5.3);
    const util = findings.find((f) => f.id === 'CVE-2022-0563');
    assert.equal(util?.severity, 'unknown');
    assert.equal(util?.score, null);
    assert.deepEqual(summarize(findings), { unknown: 1, none: 0, low: 1, medium: 1, high: 1, critical: 1 });
  });

  it('maps Harbor severity words', () => {
    const cases: [string | null | undefined, string][] = [
      ['Critical', 'critical'],
      ['High', 'high'],
      ['Medium', 'medium'],
      ['Low', 'low'],
      ['Negligible', 'low'],
      ['Unknown', 'unknown'],
      ['None', 'none'],
      ['HIGH', 'high'],
      ['moderate', 'unknown'],
      ['', 'unknown'],
      [null, 'unknown'],
      [undefined, 'unknown'],
    ];
    for (const [word, expected] of cases) assert.equal(harborSeverity(word), expected, String(word));
  });

  it('prefers preferred_cvss, then the NVD vendor score, then cve3_score; ignores scores out of range', () => {
    const base: HarborVulnerability = { id: 'CVE-1', package: 'p', version: '1' };
    assert.equal(harborScore(base), null);
    assert.equal(harborScore({ ...base, cve3_score: '4.4' }), 4.4);
    assert.equal(harborScore({ ...base, cve3_score: 6.1 }), 6.1);
    assert.equal(harborScore({ ...base, cve3_score: 'n/a' }), null);
    const nvd = { ...base, cve3_score: '4.4', vendor_attributes: { CVSS: { nvd: { V3Score: 8.1 } } } };
    assert.equal(harborScore(nvd), 8.1);
    assert.equal(harborScore({ ...nvd, preferred_cvss: { score_v3: 9.1 } }), 9.1);
    assert.equal(harborScore({ ...nvd, preferred_cvss: { score_v3: null, score_v2: 5 } }), 8.1);
    assert.equal(harborScore({ ...base, preferred_cvss: { score_v3: 12 }, cve3_score: '-1' }), null);
    assert.equal(harborScore({ ...base, vendor_attributes: { CVSS: 'high' } }), null);
  });

  it('uses the score band only where the adapter gives no severity word', () => {
    const one = (vulnerability: Record<string, unknown>) =>
      toFindings({ vulnerabilities: [{ id: 'CVE-2', package: 'p', version: '1', ...vulnerability }] })[0]!;
    assert.equal(one({ severity: 'Unknown', cve3_score: '7.5' }).severity, 'high');
    assert.equal(one({ cve3_score: '3.1' }).severity, 'low');
    assert.equal(one({ severity: 'Low', cve3_score: '9.8' }).severity, 'low');
  });

  it('names ecosystems from purls, collapses repeated entries, keeps one summary line', () => {
    const findings = toFindings({
      vulnerabilities: [
        {
          id: 'GHSA-rv95-896h-c2vc',
          package: 'express',
          version: '4.18.2',
          fix_version: '4.19.2',
          severity: 'Medium',
          purl: 'pkg:npm/express@4.18.2',
        },
        {
          id: 'GHSA-rv95-896h-c2vc',
          package: 'express',
          version: '4.18.2',
          fix_version: '4.19.2',
          severity: 'Medium',
          purl: 'pkg:npm/express@4.18.2',
        },
        {
          id: 'CVE-2024-35195',
          package: 'requests',
          version: '2.31.0',
          severity: 'Medium',
          purl: 'pkg:pypi/requests@2.31.0',
          links: ['https://x', ' https://x ', ''],
        },
        {
          id: 'CVE-2024-2511',
          package: 'libssl3',
          version: '3.1.4-r5',
          severity: 'Low',
          purl: 'pkg:apk/alpine/libssl3@3.1.4-r5?arch=x86_64',
        },
        {
          id: 'CVE-2024-1',
          package: 'libc6',
          version: '2.35-0ubuntu3',
          severity: 'Low',
          purl: 'pkg:deb/ubuntu/libc6@2.35-0ubuntu3',
        },
        {
          id: 'CVE-2024-2',
          package: 'x',
          version: '1',
          severity: 'Low',
          purl: 'pkg:cargo/x@1',
          description: '\n  ',
        },
      ],
    });
    assert.deepEqual(
      findings.map((f) => [f.id, f.package.ecosystem]),
      [
        ['GHSA-rv95-896h-c2vc', 'npm'],
        ['CVE-2024-35195', 'PyPI'],
        ['CVE-2024-2511', 'Alpine'],
        ['CVE-2024-1', 'Ubuntu'],
        ['CVE-2024-2', 'crates.io'],
      ],
    );
    assert.deepEqual(findings[1]!.links, ['https://x']);
    assert.equal(findings[4]!.summary, null);
    const long = toFindings({
      vulnerabilities: [{ id: 'CVE-3', package: 'p', version: '1', description: 'a'.repeat(500) }],
    });
    assert.equal(long[0]!.summary!.length, 300);
  });

  it('accepts the nulls Go adapters write for empty lists and absent fields', () => {
    assert.deepEqual(toFindings({ vulnerabilities: null }), []);
    assert.deepEqual(toFindings({}), []);
    const [finding] = toFindings({
      scanner: null,
      vulnerabilities: [
        {
          id: 'CVE-4',
          package: 'p',
          version: '1',
          fix_version: null,
          links: null,
          purl: null,
          preferred_cvss: null,
          vendor_attributes: null,
          description: null,
          severity: null,
        },
      ],
    });
    assert.equal(finding?.severity, 'unknown');
    assert.equal(finding?.package.purl, null);
  });

  it('rejects a malformed report with a typed error naming the field', () => {
    for (const bad of [
      null,
      3,
      'x',
      [],
      { vulnerabilities: 'none' },
      { vulnerabilities: [{ id: '', package: 'p', version: '1' }] },
      { vulnerabilities: [{ id: 'CVE-5', package: 'p', version: 1 }] },
      { vulnerabilities: [{ id: 'CVE-6', package: 'p', version: '1', preferred_cvss: { score_v3: '7' } }] },
    ]) {
      assert.throws(
        () => toFindings(bad),
        (error: unknown) => error instanceof ScannerError && error.code === 'MALFORMED_REPORT',
        JSON.stringify(bad),
      );
    }
    assert.throws(
      () => parseHarborReport({ vulnerabilities: [{ id: 'CVE-5', package: 'p', version: 1 }] }),
      /vulnerabilities\.0\.version/,
    );
  });

  it('says who scanned, from the report or else the metadata', () => {
    const parsed = parseHarborReport(report);
    const metadata = {
      scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.59.0' },
      capabilities: [],
    };
    assert.deepEqual(scannerInfo(parsed), { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.58.1' });
    assert.deepEqual(scannerInfo(parseHarborReport({ scanner: { name: 'Trivy' } }), metadata), {
      name: 'Trivy',
      vendor: 'Aqua Security',
      version: 'v0.59.0',
    });
    assert.deepEqual(scannerInfo(parseHarborReport({ scanner: { name: 'Grype' } }), metadata), {
      name: 'Grype',
      vendor: '',
      version: '',
    });
    assert.deepEqual(scannerInfo(parseHarborReport({}), metadata), metadata.scanner);
    assert.deepEqual(scannerInfo(parseHarborReport({})), { name: 'unknown', vendor: '', version: '' });
    const scan = toScanReport(report, metadata);
    assert.equal(scan.scanner.version, 'v0.58.1');
    assert.equal(scan.os, null);
    assert.deepEqual(scan.packages, []);
    assert.equal(scan.findings.length, 5);
  });
});
