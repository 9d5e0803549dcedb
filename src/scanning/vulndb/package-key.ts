/** Package keys of the vulnerability database: base ecosystem and the name in the form the index compares. */
import type { PackageKey } from '../../metadata/vulndb-store.ts';

/** The name as the database indexes it: PyPI names in their PEP 503 normal form, others exactly as given. */
export function normalPackageName(ecosystem: string, name: string): string {
  return ecosystem === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name;
}

/** The key of package `name` of base ecosystem `ecosystem` (`Debian`, not `Debian:12`). */
export function packageKey(ecosystem: string, name: string): PackageKey {
  return { ecosystem, name: normalPackageName(ecosystem, name) };
}
