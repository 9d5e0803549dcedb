/** The verifiers of every signature format Berth recognises. */
import type { SignatureVerifiers } from './service.ts';
import { unverified } from './verdict.ts';

export const signatureVerifiers: SignatureVerifiers = {
  cosign: () => Promise.resolve(unverified('cosign', 'cosign-simple-signing', 'PENDING')),
  sigstoreBundle: () => Promise.resolve(unverified('cosign', 'sigstore-bundle', 'PENDING')),
  notation: () => Promise.resolve(unverified('notation', 'notation-jws', 'PENDING')),
};
