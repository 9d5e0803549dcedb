/** The tables of migration 0013 (replication), as Kysely sees them. */
import type { Generated } from 'kysely';
import type { Flag } from './schema.ts';

export interface ReplicationRegistriesTable {
  id: Generated<number>;
  name: string;
  url: string;
  username: string | null;
  sealed_password: string | null;
  ca_bundle: string | null;
  insecure: Flag;
  concurrency: number;
  created_at: number;
  updated_at: number;
}

export interface ReplicationPoliciesTable {
  id: Generated<number>;
  name: string;
  registry_id: number;
  direction: 'push' | 'pull';
  /** JSON arrays of globs. */
  repositories: string;
  exclude_repositories: string;
  tags: string;
  exclude_tags: string;
  rewrite_strip: string;
  rewrite_add: string;
  trigger: 'manual' | 'schedule' | 'event';
  schedule: string | null;
  replicate_deletions: Flag;
  bandwidth_limit: number | null;
  enabled: Flag;
  last_slot: number | null;
  created_at: number;
  updated_at: number;
}

export interface ReplicationExecutionsTable {
  id: Generated<number>;
  policy_id: number | null;
  policy_name: string;
  state: 'queued' | 'running' | 'canceling' | 'succeeded' | 'failed' | 'canceled';
  trigger: string;
  requested_by: string | null;
  planned: Flag;
  dedupe_key: string | null;
  error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface ReplicationTasksTable {
  id: Generated<number>;
  execution_id: number;
  kind: 'copy' | 'delete';
  source_repository: string;
  source_reference: string;
  destination_repository: string;
  state: 'pending' | 'running' | 'succeeded' | 'failed';
  attempts: number;
  bytes: number;
  error: string | null;
  started_at: number | null;
  finished_at: number | null;
}

export interface ReplicationTables {
  replication_registries: ReplicationRegistriesTable;
  replication_policies: ReplicationPoliciesTable;
  replication_executions: ReplicationExecutionsTable;
  replication_tasks: ReplicationTasksTable;
}
