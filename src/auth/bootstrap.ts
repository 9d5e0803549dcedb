/**
 * The first administrator: created on start from `BERTH_ADMIN_PASSWORD` (username `auth.adminUsername`) when no
 * enabled administrator exists yet. An existing user of that name is made an admin and given the password.
 */
import { ConflictError, type AuthStore } from '../metadata/auth-store.ts';
import { hashPassword } from './passwords.ts';

export async function bootstrapAdmin(
  store: AuthStore,
  username: string,
  password: string | undefined,
  /** Throws when the username or password breaks the rules every account follows (run only when used). */
  check: (username: string, password: string) => void = () => undefined,
): Promise<'created' | 'promoted' | 'exists' | 'none'> {
  if ((await store.countAdmins()) > 0) return 'exists';
  if (password === undefined || password === '') return 'none';
  check(username, password);
  const passwordHash = await hashPassword(password);
  const existing = await store.getUser(username);
  if (existing) {
    await store.updateUser(username, { passwordHash, isAdmin: true, disabled: false });
    return 'promoted';
  }
  try {
    await store.createUser({ username, passwordHash, isAdmin: true });
  } catch (e) {
    // Another instance created it at the same moment.
    if (e instanceof ConflictError) return 'exists';
    throw e;
  }
  return 'created';
}
