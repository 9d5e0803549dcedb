/** Package keys of the vulnerability database: base ecosystem and the name in the form the index compares. */
import type { PackageKey } from '../../metadata/vulndb-store.ts';
import { normalisePypiName } from '../inventory/collectors/python.ts';

/** The name as the database indexes it: PyPI names in their PEP 503 normal form, others exactly as given. */
export function normalPackageName(ecosystem: string, name: string): string {
  return ecosystem === 'PyPI' ? normalisePypiName(name) : name;
}

/** The key of package `name` of base ecosystem `ecosystem` (`Debian`, not `Debian:12`). */
export function packageKey(ecosystem: string, name: string): PackageKey {
  return { ecosystem, name: normalPackageName(ecosystem, name) };
}
