/** `berth jobs list|show|retry|cancel`: the background job queue of the configured database. */
import { type Command, InvalidArgumentError } from 'commander';
import type { JobView } from '../../admin/job-admin.ts';
import {
  collect,
  common,
  fields,
  paging,
  run,
  table,
  toJson,
  type CommonFlags,
  type Context,
  type PageFlags,
} from './common.ts';

interface ListFlags extends CommonFlags, PageFlags {
  readonly queue?: string;
  readonly state?: string;
}

function jobIdArg(value: string): number {
  const n = Number(value);
  if (!/^[1-9]\d*$/.test(value) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError('expected a job id (a positive whole number)');
  return n;
}

function show(ctx: Context, job: JobView): void {
  if (ctx.json) return ctx.out(toJson(job));
  ctx.out(
    fields([
      ['id', job.id],
      ['queue', job.queue],
      ['state', job.state],
      ['attempts', `${job.attempts}/${job.maxAttempts}`],
      ['run at', job.runAt],
      ['dedupe key', job.dedupeKey],
      ['lease owner', job.leaseOwner],
      ['lease expires', job.leaseExpiresAt],
      ['last error', job.lastError],
      ['created', job.createdAt],
      ['updated', job.updatedAt],
      ['finished', job.finishedAt],
      ['payload', job.payload],
    ]),
  );
}

export function registerJobCommands(program: Command): void {
  const jobs = program
    .command('jobs')
    .description('inspect and manage background jobs (webhook deliveries, upload purge, ...)');

  paging(common(jobs.command('list')))
    .description('list jobs, newest first')
    .option('--queue <queue>', 'only jobs of this queue')
    .option('--state <state>', 'only jobs in this state (queued, running, succeeded, dead, cancelled)')
    .action(async (flags: ListFlags) =>
      run('jobs list', flags, async (ctx) => {
        const r = await collect(flags, (page) =>
          ctx.jobs.list(ctx.actor, { ...page, queue: flags.queue, state: flags.state }),
        );
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['ID', 'QUEUE', 'STATE', 'ATTEMPTS', 'RUN AT', 'FINISHED', 'LAST ERROR'],
            r.items.map((j) => [
              j.id,
              j.queue,
              j.state,
              `${j.attempts}/${j.maxAttempts}`,
              j.runAt,
              j.finishedAt,
              j.lastError === null ? null : j.lastError.split('\n')[0]?.slice(0, 80),
            ]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(jobs.command('show'))
    .description('show one job')
    .argument('<id>', 'job id', jobIdArg)
    .action(async (id: number, flags: CommonFlags) =>
      run('jobs show', flags, async (ctx) => show(ctx, await ctx.jobs.get(ctx.actor, id))),
    );

  common(jobs.command('retry'))
    .description('queue a dead or cancelled job again, due now, with its attempts reset')
    .argument('<id>', 'job id', jobIdArg)
    .action(async (id: number, flags: CommonFlags) =>
      run('jobs retry', flags, async (ctx) => {
        const job = await ctx.jobs.retry(ctx.actor, id);
        ctx.out(ctx.json ? toJson(job) : `Job ${id} (${job.queue}) is queued again.`);
      }),
    );

  common(jobs.command('cancel'))
    .description('cancel a queued, running or dead job (a running one stops at its next lease renewal)')
    .argument('<id>', 'job id', jobIdArg)
    .action(async (id: number, flags: CommonFlags) =>
      run('jobs cancel', flags, async (ctx) => {
        const job = await ctx.jobs.cancel(ctx.actor, id);
        ctx.out(ctx.json ? toJson(job) : `Job ${id} (${job.queue}) is cancelled.`);
      }),
    );
}
