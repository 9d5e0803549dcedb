/**
 * `berth vulndb import` and `berth vulndb status`, run as the real CLI on the data directory of a registry:
 * importing a directory of the real OSV fixtures, again (all unchanged), a JSON file with an invalid record,
 * the status table and `--json`, and a path that does not exist.
 */
import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTestRegistry, type TestRegistry } from '../helpers/app.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';
import { OSV_FIXTURE_NAMES, OSV_FIXTURE_PACKAGES } from '../helpers/osv-fixtures.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/osv/', import.meta.url));

describe('berth vulndb', () => {
  let reg: TestRegistry;
  let osv: string;

  before(async () => {
    reg = await createTestRegistry();
    osv = path.join(reg.dataDir, 'osv');
    await cp(FIXTURES, osv, { recursive: true });
  });
  after(() => reg.dispose());

  it('imports a directory, then finds it unchanged; audited as the system', async () => {
    const out = succeeded(await runBerth(reg.dataDir, ['vulndb', 'import', osv]), 'import');
    assert.match(
      out,
      new RegExp(
        `^Imported .*osv \\(directory, source osv\\): ${OSV_FIXTURE_NAMES.length} added, 0 updated, 0 unchanged, 0 invalid; revision 1; ${OSV_FIXTURE_PACKAGES.length} package\\(s\\) changed\\.$`,
        'm',
      ),
    );
    const again = JSON.parse(
      succeeded(
        await runBerth(reg.dataDir, ['vulndb', 'import', osv, '--json', '--source', 'mirror']),
        'again',
      ),
    );
    assert.deepEqual(
      [again.kind, again.source, again.added, again.unchanged, again.revision, again.changed],
      ['directory', 'mirror', 0, OSV_FIXTURE_NAMES.length, 1, []],
    );
    const audit = await reg.services.auth.store.queryAudit({ action: 'vulndb.import', limit: 10 });
    assert.deepEqual(audit.items.map((a) => `${a.actorKind} ${a.target}`).reverse(), [
      'system osv',
      'system mirror',
    ]);
  });

  it('lists invalid records of a JSON file', async () => {
    const file = path.join(reg.dataDir, 'records.json');
    await writeFile(file, JSON.stringify([{ id: 'BROKEN-1' }, { id: 'BROKEN-2', modified: 'soon' }]));
    const out = succeeded(await runBerth(reg.dataDir, ['vulndb', 'import', file]), 'import json');
    assert.match(out, /0 added, 0 updated, 0 unchanged, 2 invalid/);
    assert.match(out, /^invalid: records\.json#0 \(BROKEN-1\): .*modified/m);
    assert.match(out, /^invalid: records\.json#1 \(BROKEN-2\): /m);
  });

  it('prints the status as a table and as JSON', async () => {
    const text = succeeded(await runBerth(reg.dataDir, ['vulndb', 'status']), 'status');
    assert.match(text, /^revision:\s+1$/m);
    assert.match(text, /^ECOSYSTEM\s+ADVISORIES\s+WITHDRAWN$/m);
    assert.match(text, /^npm\s+2\s+0$/m);
    assert.match(text, new RegExp(`^osv\\s+\\S+Z\\s+${OSV_FIXTURE_NAMES.length}\\s+0\\s+0\\s+0\\s+1$`, 'm'));
    const view = JSON.parse(succeeded(await runBerth(reg.dataDir, ['vulndb', 'status', '--json']), 'json'));
    assert.equal(view.revision, 1);
    assert.deepEqual(
      view.imports.map((i: { source: string }) => i.source),
      ['mirror', 'osv', 'records.json'],
    );
  });

  it('fails with exit code 1 on a path that does not exist', async () => {
    const r = await runBerth(reg.dataDir, ['vulndb', 'import', path.join(reg.dataDir, 'missing.zip')]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, /^berth vulndb import: cannot read .*missing\.zip/);
  });
});
