/** The tables of migration 0014 (signature trust and verdicts), as Kysely sees them. */
import type { Flag } from './schema.ts';

export interface SignatureTrustTable {
  namespace: string;
  /** JSON: the trust configuration (`signing/trust.ts`). */
  document: string;
  revision: number;
  updated_by: string | null;
  updated_at: number;
}

export interface SignatureVerdictsTable {
  signature_manifest_id: number;
  subject_digest: string;
  layer: number;
  tool: string;
  format: string;
  verified: Flag;
  signer: string | null;
  fingerprint: string | null;
  reason: string | null;
  /** JSON array of strings. */
  notes: string;
  signed_at: string | null;
  trust_revision: number;
  checked_at: number;
}

export interface SignatureTables {
  signature_trust: SignatureTrustTable;
  signature_verdicts: SignatureVerdictsTable;
}
