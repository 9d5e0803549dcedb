/**
 * `berth gc`: runs garbage collection in this process, online (the registry keeps serving; one collection runs at
 * a time across instances), or a dry run, printing what it freed or would free, with a progress bar on a
 * terminal. `berth gc history` and `berth gc show` read the runs of every instance.
 */
import type { Command } from 'commander';
import { GcAdmin, type GcRunView } from '../../admin/gc-admin.ts';
import { conflict } from '../../admin/errors.ts';
import { GcBusyError } from '../../gc/collector.ts';
import type { GcProgress } from '../../metadata/gc-store.ts';
import { formatBytes } from '../../util/bytes.ts';
import { common, run, table, toJson, type CommonFlags } from './common.ts';

interface GcFlags extends CommonFlags {
  readonly dryRun?: boolean;
}

export function registerGcCommands(program: Command): void {
  const gc = common(program.command('gc'))
    .description('collect garbage now: unreferenced manifests and blobs (online; see docs/gc.md)')
    .option('--dry-run', 'only report what a collection would delete')
    .action(async (flags: GcFlags) =>
      run('gc', flags, async (ctx) => {
        const bar = !ctx.json && process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
        let result;
        try {
          result = await ctx.services.gc.runHere(
            { dryRun: flags.dryRun === true, trigger: 'cli', requestedBy: null },
            (phase, progress) => bar?.update(phase, progress),
          );
        } catch (e) {
          if (e instanceof GcBusyError) throw conflict(`${e.message}: try again when it has finished`);
          throw e;
        } finally {
          bar?.done();
        }
        ctx.out(ctx.json ? toJson(result) : summary(result));
      }),
    );

  common(gc.command('history'))
    .description('list garbage collection runs, newest first')
    .option('--limit <n>', 'runs to show', (v) => Number(v))
    .action(async (flags: CommonFlags & { limit?: number }) =>
      run('gc history', withParent(gc, flags), async (ctx) => {
        const runs = await new GcAdmin(ctx.admin, ctx.services.gc, ctx.services.auth.audit).list(ctx.actor, {
          limit: flags.limit,
        });
        ctx.out(
          ctx.json
            ? toJson(runs)
            : table(
                ['ID', 'STATE', 'DRY RUN', 'TRIGGER', 'STARTED', 'MANIFESTS', 'BLOBS', 'FREED'],
                runs.items.map((r) => [
                  r.id,
                  r.state,
                  r.dryRun ? 'yes' : 'no',
                  r.trigger,
                  r.startedAt?.toISOString() ?? '-',
                  r.progress.manifestsDeleted,
                  r.progress.blobsDeleted + r.progress.orphansDeleted,
                  formatBytes(r.progress.bytesFreed),
                ]),
              ),
        );
      }),
    );

  common(gc.command('show'))
    .description('show one garbage collection run')
    .argument('<id>', 'run id')
    .action(async (id: string, flags: CommonFlags) =>
      run('gc show', withParent(gc, flags), async (ctx) => {
        const r = await new GcAdmin(ctx.admin, ctx.services.gc, ctx.services.auth.audit).get(
          ctx.actor,
          Number(id),
        );
        ctx.out(ctx.json ? toJson(r) : summary(r));
      }),
    );
}

/** The flags of a subcommand with those its parent parsed (`--config`, `--data`, `--json` given after it). */
function withParent<F extends CommonFlags>(parent: Command, flags: F): F {
  const inherited = parent.opts<CommonFlags>();
  return {
    ...flags,
    ...(inherited.config !== undefined ? { config: inherited.config } : {}),
    ...(inherited.data !== undefined ? { data: inherited.data } : {}),
    ...(inherited.json !== undefined ? { json: inherited.json } : {}),
  };
}

/** What a run did, in a few lines. */
function summary(r: GcRunView): string {
  const p = r.progress;
  const verb = r.dryRun ? 'Would delete' : 'Deleted';
  const lines = [
    `Garbage collection run ${r.id}${r.dryRun ? ' (dry run)' : ''}: ${r.state}${r.error ? ` (${r.error})` : ''}`,
    `${verb} ${p.manifestsDeleted} manifest(s) and ${p.blobsDeleted} blob(s)` +
      (p.orphansDeleted > 0 ? ` and ${p.orphansDeleted} orphaned blob file(s)` : '') +
      `, ${r.dryRun ? 'freeing' : 'freed'} ${formatBytes(p.bytesFreed)} (${p.bytesFreed} bytes).`,
    `Reviewed ${p.manifestsReviewed} manifest(s) and ${p.blobsReviewed} blob(s).`,
  ];
  const purged = Object.entries(p.purged);
  if (purged.length > 0) lines.push(`Purged: ${purged.map(([k, n]) => `${n} ${k}`).join(', ')}.`);
  return `${lines.join('\n')}\n`;
}

/** A one-line progress bar redrawn in place on a terminal. */
class ProgressBar {
  private last = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  update(phase: string, p: GcProgress): void {
    const now = Date.now();
    if (now - this.last < 100 && phase !== 'done') return;
    this.last = now;
    const done = p.manifestsReviewed + p.blobsReviewed;
    const ratio = p.total > 0 ? Math.min(1, done / p.total) : phase === 'done' ? 1 : 0;
    const width = 30;
    const filled = Math.round(ratio * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    this.stream.write(
      `\r[${bar}] ${String(Math.round(ratio * 100)).padStart(3)}% ${phase.padEnd(9)} ` +
        `${done}/${p.total} reviewed, ${formatBytes(p.bytesFreed)} freed\x1b[K`,
    );
  }

  done(): void {
    this.stream.write('\n');
  }
}
