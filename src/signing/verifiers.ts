/** The verifiers of every signature format Berth recognises, as the signature service uses them. */
import { verifyCosignSignature } from './cosign.ts';
import { verifyNotationSignature } from './notation.ts';
import type { SignatureVerifiers } from './service.ts';
import { verifySigstoreBundle } from './sigstore-bundle.ts';

export const signatureVerifiers: SignatureVerifiers = {
  cosign: verifyCosignSignature,
  sigstoreBundle: verifySigstoreBundle,
  notation: verifyNotationSignature,
};
