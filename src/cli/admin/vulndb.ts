/**
 * `berth vulndb import <FILE|DIR>` (an OSV `all.zip`, a directory of OSV JSON files, or a JSON file of records)
 * and `berth vulndb status` (revision, advisories per ecosystem, the last import of each source).
 */
import path from 'node:path';
import type { Command } from 'commander';
import { VulnDbAdmin, type VulnDbImportView } from '../../admin/vulndb-admin.ts';
import { common, fields, run, table, toJson, type CommonFlags, type Context } from './common.ts';

function vulnDbAdmin(ctx: Context): VulnDbAdmin {
  return new VulnDbAdmin(ctx.admin, ctx.services.auth.audit, ctx.services.vulnDb, (revision, changed) =>
    ctx.services.scanning.databaseChanged(revision, changed),
  );
}

function describeImport(target: string, view: VulnDbImportView): string {
  const lines = [
    `Imported ${target} (${view.kind}, source ${view.source}): ${view.added} added, ${view.updated} updated, ` +
      `${view.unchanged} unchanged, ${view.invalid} invalid; revision ${view.revision}; ` +
      `${view.changed.length} package(s) changed.`,
  ];
  for (const s of view.invalidSamples) {
    lines.push(`invalid: ${s.entry}${s.id === null ? '' : ` (${s.id})`}: ${s.reason}`);
  }
  if (view.invalid > view.invalidSamples.length) {
    lines.push(`... and ${view.invalid - view.invalidSamples.length} more invalid record(s)`);
  }
  return `${lines.join('\n')}\n`;
}

export function registerVulnDbCommands(program: Command): void {
  const vulndb = program
    .command('vulndb')
    .description('the offline vulnerability database (OSV data) of the built-in scanner');

  common(vulndb.command('import'))
    .description('import OSV data: an all.zip of osv.dev, a directory of OSV JSON files, or a JSON file')
    .argument('<path>', 'the archive, directory or file')
    .option('--source <name>', 'the name its import state is recorded under (default: the base name)')
    .action(async (target: string, flags: CommonFlags & { source?: string }) =>
      run('vulndb import', flags, async (ctx) => {
        const source = flags.source ?? path.basename(path.resolve(target));
        const view = await vulnDbAdmin(ctx).importFile(ctx.actor, target, source);
        ctx.out(ctx.json ? toJson(view) : describeImport(target, view));
      }),
    );

  common(vulndb.command('status'))
    .description('print the database revision, advisories per ecosystem and the last import of each source')
    .action(async (flags: CommonFlags) =>
      run('vulndb status', flags, async (ctx) => {
        const view = await vulnDbAdmin(ctx).status(ctx.actor);
        if (ctx.json) {
          ctx.out(toJson(view));
          return;
        }
        const ecosystems =
          view.ecosystems.length === 0
            ? 'No advisories.\n'
            : table(
                ['ECOSYSTEM', 'ADVISORIES', 'WITHDRAWN'],
                view.ecosystems.map((e) => [e.ecosystem, e.advisories, e.withdrawn]),
              );
        const imports =
          view.imports.length === 0
            ? 'No imports.\n'
            : table(
                ['SOURCE', 'IMPORTED AT', 'ADDED', 'UPDATED', 'UNCHANGED', 'INVALID', 'REVISION'],
                view.imports.map((i) => [
                  i.source,
                  i.importedAt,
                  i.added,
                  i.updated,
                  i.unchanged,
                  i.invalid,
                  i.revision,
                ]),
              );
        ctx.out(`${fields([['revision', view.revision]])}\n${ecosystems}\n${imports}`);
      }),
    );
}
