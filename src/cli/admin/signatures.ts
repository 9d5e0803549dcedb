/**
 * `berth signatures`: a namespace's signature trust (show, set, remove), the signatures of an image and what
 * verifying them concluded (`verify`), and verifying a namespace's signatures again (`recompute`).
 */
import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { invalid } from '../../admin/errors.ts';
import { SignatureAdmin, type SignatureVerdictsView } from '../../admin/signature-admin.ts';
import {
  common,
  fields,
  readDocument,
  run,
  table,
  toJson,
  type CommonFlags,
  type Context,
} from './common.ts';

function signatureAdmin(ctx: Context): SignatureAdmin {
  return new SignatureAdmin(
    ctx.admin,
    ctx.services.auth.audit,
    ctx.services.signatures,
    ctx.services.metadata,
  );
}

/**
 * Splits `team/app:v1` or `team/app@sha256:...` into the repository and the reference; `invalid` without a tag or
 * digest (a verification names exactly what it checks).
 */
export function splitImageReference(image: string): { repository: string; reference: string } {
  const at = image.indexOf('@');
  if (at !== -1) return { repository: image.slice(0, at), reference: image.slice(at + 1) };
  const colon = image.lastIndexOf(':');
  if (colon > image.lastIndexOf('/')) {
    return { repository: image.slice(0, colon), reference: image.slice(colon + 1) };
  }
  throw invalid(`${JSON.stringify(image)}: expected REPOSITORY:TAG or REPOSITORY@DIGEST`, 'image');
}

function describeVerdicts(view: SignatureVerdictsView): string {
  const head = fields([
    ['repository', view.repository],
    ['digest', view.digest],
    ['mode', view.mode],
  ]);
  const rows = view.verdicts.map((v) => [
    v.signatureDigest,
    v.tool,
    v.format,
    v.verified,
    v.signer,
    v.fingerprint,
    v.reason,
  ]);
  const list =
    rows.length === 0
      ? 'No signatures.\n'
      : table(['SIGNATURE DIGEST', 'TOOL', 'FORMAT', 'VERIFIED', 'SIGNER', 'FINGERPRINT', 'REASON'], rows);
  const notes = view.verdicts.flatMap((v) => v.notes.map((n) => `note (${v.signatureDigest}): ${n}\n`));
  return `${head}${list}${notes.join('')}signed: ${view.signed ? 'yes' : 'no'}\n`;
}

export function registerSignatureCommands(program: Command): void {
  const signatures = program
    .command('signatures')
    .description("manage namespaces' image signature trust and inspect signatures");
  const trust = signatures.command('trust').description("a namespace's signature trust configuration");

  common(trust.command('show'))
    .description("print a namespace's signature trust (YAML, as `trust set` takes it)")
    .argument('<namespace>')
    .action(async (namespace: string, flags: CommonFlags) =>
      run('signatures trust show', flags, async (ctx) => {
        const view = await signatureAdmin(ctx).getTrust(ctx.actor, namespace);
        ctx.out(
          ctx.json
            ? toJson(view)
            : `${fields([
                ['namespace', view.namespace],
                ['revision', view.revision],
                ['updated by', view.updatedBy],
                ['updated at', view.updatedAt],
              ])}---\n${toYaml(view.trust)}`,
        );
      }),
    );

  common(trust.command('set'))
    .description("replace a namespace's signature trust from a JSON or YAML file")
    .argument('<namespace>')
    .requiredOption('-f, --file <file>', 'the trust configuration (JSON or YAML); `-` reads stdin')
    .action(async (namespace: string, flags: CommonFlags & { file: string }) =>
      run('signatures trust set', flags, async (ctx) => {
        const view = await signatureAdmin(ctx).setTrust(ctx.actor, namespace, await readDocument(flags.file));
        ctx.out(
          ctx.json
            ? toJson(view)
            : `Set the signature trust of ${namespace} (revision ${view.revision}, mode ${view.trust.mode}).`,
        );
      }),
    );

  common(trust.command('remove'))
    .description("put a namespace's signature trust back to the default (mode off, nothing trusted)")
    .argument('<namespace>')
    .action(async (namespace: string, flags: CommonFlags) =>
      run('signatures trust remove', flags, async (ctx) => {
        const view = await signatureAdmin(ctx).removeTrust(ctx.actor, namespace);
        ctx.out(
          ctx.json
            ? toJson(view)
            : `Removed the signature trust of ${namespace} (revision ${view.revision}, mode off).`,
        );
      }),
    );

  common(signatures.command('verify'))
    .description('list the signatures of an image and whether they verify against its namespace trust')
    .argument('<image>', 'REPOSITORY:TAG or REPOSITORY@DIGEST, e.g. team/app:v1')
    .action(async (image: string, flags: CommonFlags) =>
      run('signatures verify', flags, async (ctx) => {
        const { repository, reference } = splitImageReference(image);
        const view = await signatureAdmin(ctx).verdicts(ctx.actor, repository, reference);
        ctx.out(ctx.json ? toJson(view) : describeVerdicts(view));
      }),
    );

  common(signatures.command('recompute'))
    .description('verify every signature of a namespace again under its current trust, now')
    .argument('<namespace>')
    .action(async (namespace: string, flags: CommonFlags) =>
      run('signatures recompute', flags, async (ctx) => {
        const result = await signatureAdmin(ctx).recompute(ctx.actor, namespace);
        ctx.out(
          ctx.json
            ? toJson(result)
            : `Verified ${result.signatures} signature manifest(s) of ${namespace} again.`,
        );
      }),
    );
}
