/** `berth usage [NAMESPACE]` and `berth quota set NAMESPACE SIZE`: storage usage per namespace and quotas. */
import { type Command, InvalidArgumentError } from 'commander';
import { UsageAdmin } from '../../admin/usage-admin.ts';
import { formatBytes } from '../../util/bytes.ts';
import { common, fields, run, table, toJson, type CommonFlags } from './common.ts';

const UNIT_BYTES: Record<string, number> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  pib: 1024 ** 5,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
  pb: 1000 ** 5,
};

/** A size: bytes (`1073741824`), with a unit (`10GiB`, `1.5 TiB`, `500MB`), or `none` (no quota). */
export function parseSize(value: string): number | null {
  if (/^(none|unlimited)$/i.test(value)) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m?.[2] === undefined || m[2] === '' ? 'b' : m[2].toLowerCase();
  const factor = UNIT_BYTES[unit];
  if (!m || factor === undefined)
    throw new InvalidArgumentError('expected a size such as 10GiB, 500MiB or 1073741824, or none');
  const bytes = Math.floor(Number(m[1]) * factor);
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError('size too large');
  return bytes;
}

function quotaText(quota: number | null): string {
  return quota === null ? 'unlimited' : formatBytes(quota);
}

function percent(bytes: number, quota: number | null): string | null {
  return quota === null || quota === 0 ? null : `${((bytes / quota) * 100).toFixed(1)}%`;
}

export function registerUsageCommands(program: Command): void {
  common(program.command('usage'))
    .description('storage used per namespace (distinct blobs plus manifests), with quotas')
    .argument('[namespace]', 'one namespace, with the size of each of its repositories')
    .action(async (namespace: string | undefined, flags: CommonFlags) =>
      run('usage', flags, async (ctx) => {
        const admin = new UsageAdmin(ctx.admin, ctx.services.usage, ctx.services.auth.audit);
        if (namespace === undefined) {
          const report = await admin.report(ctx.actor);
          if (ctx.json) return ctx.out(toJson(report));
          ctx.out(
            table(
              ['NAMESPACE', 'USED', 'QUOTA', 'USE%'],
              report.namespaces.map((u) => [
                u.namespace,
                formatBytes(u.bytes),
                quotaText(u.quota),
                percent(u.bytes, u.quota),
              ]),
            ),
          );
          ctx.out(`Stored in total (each blob once): ${formatBytes(report.physicalBytes)}`);
          return;
        }
        const detail = await admin.namespaceUsage(ctx.actor, namespace);
        if (ctx.json) return ctx.out(toJson(detail));
        ctx.out(
          fields([
            ['Namespace', detail.namespace],
            ['Used', `${formatBytes(detail.bytes)} (${detail.bytes} bytes)`],
            [
              'Quota',
              detail.quota === null ? 'unlimited' : `${formatBytes(detail.quota)} (${detail.quota} bytes)`,
            ],
            ['Use', percent(detail.bytes, detail.quota)],
          ]),
        );
        if (detail.repositories.length > 0) {
          ctx.out(
            table(
              ['REPOSITORY', 'SIZE', 'TAGS', 'MANIFESTS', 'LAST PUSH'],
              detail.repositories.map((r) => [r.name, formatBytes(r.size), r.tags, r.manifests, r.lastPush]),
            ),
          );
        }
      }),
    );

  const quota = program.command('quota').description('namespace storage quotas');
  common(quota.command('set'))
    .description('set the storage quota of a namespace (pushes that would exceed it are refused)')
    .argument('<namespace>', 'namespace name, e.g. team')
    .argument('<size>', 'bytes, or with a unit (10GiB, 500MiB, 2TB), or none to remove the quota', parseSize)
    .action(async (namespace: string, size: number | null, flags: CommonFlags) =>
      run('quota set', flags, async (ctx) => {
        const admin = new UsageAdmin(ctx.admin, ctx.services.usage, ctx.services.auth.audit);
        const usage = await admin.setQuota(ctx.actor, namespace, size);
        ctx.out(
          ctx.json
            ? toJson(usage)
            : `Quota of namespace ${namespace}: ${quotaText(usage.quota)} (uses ${formatBytes(usage.bytes)}).`,
        );
      }),
    );
}
