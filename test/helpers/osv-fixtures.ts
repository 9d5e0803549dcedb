/**
 * The OSV fixtures (`test/fixtures/osv/`) and what an import of all of them must report, computed from the
 * records themselves so that adding a fixture does not silently change what the tests expect.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The fixture directory, with a trailing slash. */
export const OSV_FIXTURES = fileURLToPath(new URL('../fixtures/osv/', import.meta.url));

/** The fixture file names, sorted. */
export const OSV_FIXTURE_NAMES: readonly string[] = readdirSync(OSV_FIXTURES)
  .filter((name) => name.endsWith('.json'))
  .sort();

interface Record {
  affected?: { package?: { ecosystem?: string; name?: string } }[];
}

const records = OSV_FIXTURE_NAMES.map(
  (name) => JSON.parse(readFileSync(`${OSV_FIXTURES}${name}`, 'utf8')) as Record,
);

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The packages the fixtures name, as `Ecosystem/name` (base ecosystem; PyPI names in PEP 503 form), sorted. */
export const OSV_FIXTURE_PACKAGES: readonly string[] = [
  ...new Set(
    records.flatMap((record) =>
      (record.affected ?? []).flatMap((affected) => {
        const ecosystem = affected.package?.ecosystem?.split(':')[0];
        const name = affected.package?.name;
        if (ecosystem === undefined || name === undefined) return [];
        return [`${ecosystem}/${ecosystem === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name}`];
      }),
    ),
  ),
].sort((a, b) => compare(a.replace('/', '\u0000'), b.replace('/', '\u0000')));

/** How many fixture advisories name each base ecosystem, by ecosystem, sorted. */
export const OSV_FIXTURE_ECOSYSTEMS: readonly { ecosystem: string; advisories: number; withdrawn: number }[] =
  [
    ...records
      .reduce((counts, record) => {
        const ecosystems = new Set(
          (record.affected ?? []).flatMap((affected) => affected.package?.ecosystem?.split(':')[0] ?? []),
        );
        for (const ecosystem of ecosystems) counts.set(ecosystem, (counts.get(ecosystem) ?? 0) + 1);
        return counts;
      }, new Map<string, number>())
      .entries(),
  ]
    .sort(([a], [b]) => compare(a, b))
    .map(([ecosystem, advisories]) => ({ ecosystem, advisories, withdrawn: 0 }));
