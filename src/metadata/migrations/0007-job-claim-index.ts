/**
 * 0007: the index job claims walk. A runner looks for the due jobs of each of its queues, oldest first
 * (`state = 'queued' AND queue = ? AND run_at <= ? ORDER BY run_at, id`): with (state, queue, run_at) the search
 * reads just the rows it returns, however long the backlog; the (state, run_at) index made it filter the other
 * queues' jobs and sort.
 */
import type { Kysely, Migration } from 'kysely';

export function jobClaimIndexMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createIndex('jobs_claim_idx')
        .on('jobs')
        .columns(['state', 'queue', 'run_at', 'id'])
        .execute();
    },
  };
}
