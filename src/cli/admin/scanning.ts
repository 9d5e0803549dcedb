/**
 * `berth scan IMAGE`: scans an image now (or shows its last report with `--cached`) and prints its
 * vulnerabilities as a table, JSON or CSV; `berth scanning policy show|set|remove` manages a namespace's scanning
 * policy, `berth scanning scanners list|add|remove` the external scanners.
 */
import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { invalid } from '../../admin/errors.ts';
import { findingsCsv, ScanAdmin, type FindingFilter, type ScanView } from '../../admin/scan-admin.ts';
import { SEVERITY_ORDER, type FindingSeverity } from '../../scanning/report.ts';
import {
  common,
  fields,
  readDocument,
  run,
  table,
  toJson,
  type CommonFlags,
  type Context,
} from './common.ts';
import { splitImageReference } from './signatures.ts';

function scanAdmin(ctx: Context): ScanAdmin {
  return new ScanAdmin(
    ctx.admin,
    ctx.services.auth.audit,
    ctx.services.scanning,
    ctx.services.scanStore,
    ctx.services.metadata,
    ctx.services.proxy.secrets,
    ctx.services.sbom,
  );
}

/** The human-readable report: a summary, then one row per finding. */
export function describeScan(view: ScanView): string {
  const counts = (['critical', 'high', 'medium', 'low', 'none', 'unknown'] as const)
    .map((severity) => `${severity} ${view.summary[severity]}`)
    .join(', ');
  const head = fields([
    ['repository', view.repository],
    ['digest', view.digest],
    ['status', view.status],
    ['scanner', view.scanner === null ? null : `${view.scanner.name} ${view.scanner.version}`],
    ['scanned at', view.scannedAt],
    [
      'os',
      view.os === null ? null : `${view.os.id} ${view.os.versionId ?? view.os.versionCodename ?? ''}`.trim(),
    ],
    ['packages', view.packageCount],
    ['vulnerabilities', counts],
    [
      'policy',
      `${view.policy.mode}, ${view.policy.severity} or higher blocks: ${view.policy.blocking} blocking`,
    ],
    ...(view.error !== null ? ([['error', view.error]] as [string, string][]) : []),
  ]);
  if (view.vulnerabilities.length === 0) return `${head}No vulnerabilities listed.\n`;
  const rows = view.vulnerabilities.map((f) => [
    f.id,
    f.severity.toUpperCase(),
    f.score === null ? '' : f.score.toFixed(1),
    f.package.name,
    f.package.version,
    f.fixedVersion ?? '(none)',
    f.blocking ? 'yes' : f.allowlisted !== null ? 'allowlisted' : 'no',
  ]);
  return `${head}${table(['ID', 'SEVERITY', 'SCORE', 'PACKAGE', 'INSTALLED', 'FIXED', 'BLOCKS'], rows)}`;
}

function severityOption(value: string | undefined): FindingSeverity | undefined {
  if (value === undefined) return undefined;
  if (!SEVERITY_ORDER.includes(value as FindingSeverity)) {
    throw invalid(`--severity must be one of ${SEVERITY_ORDER.join(', ')}`, 'severity');
  }
  return value as FindingSeverity;
}

type ScanFlags = CommonFlags & { cached?: boolean; severity?: string; fixable?: boolean; csv?: boolean };

export function registerScanningCommands(program: Command): void {
  common(program.command('scan'))
    .description('scan an image for vulnerabilities now and print them (--cached: the last report)')
    .argument('<image>', 'REPOSITORY:TAG or REPOSITORY@DIGEST, e.g. team/app:v1')
    .option('--cached', 'print the stored report without scanning again')
    .option('--severity <severity>', `only findings at this severity or above (${SEVERITY_ORDER.join(', ')})`)
    .option('--fixable', 'only findings with a known fix')
    .option('--csv', 'print CSV')
    .action(async (image: string, flags: ScanFlags) =>
      run('scan', flags, async (ctx) => {
        const { repository, reference } = splitImageReference(image);
        const severity = severityOption(flags.severity);
        const filter: FindingFilter = {
          ...(severity !== undefined ? { severity } : {}),
          ...(flags.fixable ? { fixable: true } : {}),
        };
        const admin = scanAdmin(ctx);
        if (!flags.cached) await admin.scan(ctx.actor, repository, reference, true);
        const view = await admin.report(ctx.actor, repository, reference, filter);
        ctx.out(ctx.json ? toJson(view) : flags.csv ? findingsCsv(view).trimEnd() : describeScan(view));
        if (view.status === 'failed') process.exitCode = 1;
      }),
    );

  const scanning = program
    .command('scanning')
    .description('manage vulnerability scanning policies and scanners');
  const policy = scanning.command('policy').description("a namespace's scanning policy");

  common(policy.command('show'))
    .description("print a namespace's scanning policy (YAML, as `policy set` takes it)")
    .argument('<namespace>')
    .action(async (namespace: string, flags: CommonFlags) =>
      run('scanning policy show', flags, async (ctx) => {
        const view = await scanAdmin(ctx).getPolicy(ctx.actor, namespace);
        ctx.out(
          ctx.json
            ? toJson(view)
            : `${fields([
                ['namespace', view.namespace],
                ['updated by', view.updatedBy],
                ['updated at', view.updatedAt],
              ])}---\n${toYaml(view.policy)}`,
        );
      }),
    );

  common(policy.command('set'))
    .description("replace a namespace's scanning policy from a JSON or YAML file")
    .argument('<namespace>')
    .requiredOption('-f, --file <file>', 'the policy (JSON or YAML); `-` reads stdin')
    .action(async (namespace: string, flags: CommonFlags & { file: string }) =>
      run('scanning policy set', flags, async (ctx) => {
        const view = await scanAdmin(ctx).setPolicy(ctx.actor, namespace, await readDocument(flags.file));
        ctx.out(
          ctx.json
            ? toJson(view)
            : `Set the scanning policy of ${namespace} (mode ${view.policy.mode}, ${view.policy.severity} or higher blocks).`,
        );
      }),
    );

  common(policy.command('remove'))
    .description("put a namespace's scanning policy back to the default (scan on push, refuse nothing)")
    .argument('<namespace>')
    .action(async (namespace: string, flags: CommonFlags) =>
      run('scanning policy remove', flags, async (ctx) => {
        const view = await scanAdmin(ctx).removePolicy(ctx.actor, namespace);
        ctx.out(ctx.json ? toJson(view) : `Removed the scanning policy of ${namespace}.`);
      }),
    );

  const scanners = scanning
    .command('scanners')
    .description("external scanners (Harbor's scanner adapter API)");

  common(scanners.command('list'))
    .description('list the registered external scanners')
    .action(async (flags: CommonFlags) =>
      run('scanning scanners list', flags, async (ctx) => {
        const list = await scanAdmin(ctx).listScanners(ctx.actor);
        ctx.out(
          ctx.json
            ? toJson(list)
            : list.length === 0
              ? 'No scanners.'
              : table(
                  ['NAME', 'URL', 'AUTHENTICATED', 'CREATED'],
                  list.map((s) => [s.name, s.url, s.authenticated, s.createdAt]),
                ).trimEnd(),
        );
      }),
    );

  common(scanners.command('add'))
    .description('register (or replace) an external scanner adapter')
    .argument('<name>')
    .argument('<url>', 'the adapter base URL (its API is under /api/v1)')
    .option('--authorization <value>', 'the Authorization header the adapter expects, e.g. "Bearer <token>"')
    .action(async (name: string, url: string, flags: CommonFlags & { authorization?: string }) =>
      run('scanning scanners add', flags, async (ctx) => {
        const view = await scanAdmin(ctx).setScanner(ctx.actor, name, url, flags.authorization ?? null);
        ctx.out(ctx.json ? toJson(view) : `Registered scanner ${view.name} at ${view.url}.`);
      }),
    );

  common(scanners.command('remove'))
    .description('remove an external scanner (refused while a namespace policy names it)')
    .argument('<name>')
    .action(async (name: string, flags: CommonFlags) =>
      run('scanning scanners remove', flags, async (ctx) => {
        await scanAdmin(ctx).removeScanner(ctx.actor, name);
        ctx.out(ctx.json ? toJson({ removed: name }) : `Removed scanner ${name}.`);
      }),
    );
}
