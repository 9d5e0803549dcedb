/**
 * Who is calling, and what they may do. Access is shaped like Docker token scopes:
 * `repository:<name>:pull,push,delete`, `registry:catalog:*`.
 */

/** Actions on a repository. `overwrite` (moving an existing tag) is Berth's own; it is never in a token. */
export type Action = 'pull' | 'push' | 'delete' | 'overwrite';

export const ALL_ACTIONS: readonly Action[] = ['pull', 'push', 'delete', 'overwrite'];

export interface Principal {
  readonly kind: 'anonymous' | 'user' | 'robot' | 'external';
  /** Username, robot name, the external token's subject, or `anonymous`. */
  readonly name: string;
  /** System administrator. */
  readonly isAdmin: boolean;
}

export const ANONYMOUS: Principal = Object.freeze({ kind: 'anonymous', name: 'anonymous', isAdmin: false });

/** One entry of a token's `access` claim. */
export interface AccessEntry {
  readonly type: string;
  readonly name: string;
  readonly actions: string[];
}
