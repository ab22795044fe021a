import { randomBytes } from 'node:crypto';
import { DIP_ID_PATTERN, ROLE_PATTERN, type Participant } from '../domain/participant.js';
import { hashApiKey } from '../pipeline/registry.js';
import type { ParticipantRegistry } from '../ports/store.js';
import { certificateInfo } from '../security/signature.js';

export interface OnboardRequest {
  dipId: string;
  roles: string[];
  organisation?: string;
  /** The participant's certificate (PEM): its mTLS client certificate and message-signing certificate. */
  certificatePem: string;
  /** A DIP Connection Provider (a registered participant) that connects for this one. */
  connectionProvider?: string;
}

/**
 * Registers (or updates) a participant and issues a fresh API key. Only the key's hash is stored, so the
 * key is shown once, here. The certificate must be bound to the DIP ID it is registered for.
 */
export async function onboardParticipant(store: ParticipantRegistry, req: OnboardRequest): Promise<{ participant: Participant; apiKey: string }> {
  if (!DIP_ID_PATTERN.test(req.dipId)) throw new Error(`--dip-id '${req.dipId}' must be 10 letters or digits (DT-006)`);
  if (req.roles.length === 0) throw new Error('at least one --role is required');
  for (const r of req.roles) if (!ROLE_PATTERN.test(r)) throw new Error(`--role '${r}' must be 3 to 5 capital letters, e.g. SUP, LDSO, SDS`);
  let info;
  try {
    info = certificateInfo(req.certificatePem);
  } catch (e) {
    throw new Error(`--cert is not a PEM certificate: ${(e as Error).message}`);
  }
  if (!info.dipIds.includes(req.dipId)) {
    throw new Error(`the certificate is bound to ${info.dipIds.join(', ') || 'no DIP ID'} (SAN urn:dip:participant:…), not to ${req.dipId}`);
  }
  const participant: Participant = {
    dipId: req.dipId,
    roles: [...new Set(req.roles)],
    organisation: req.organisation ?? info.subject,
    certificatePem: info.pem,
    certificateFingerprint: info.fingerprint256,
    createdAt: Date.now(),
    connectionProvider: req.connectionProvider ?? null,
  };
  if (participant.connectionProvider !== null) {
    if (participant.connectionProvider === req.dipId) throw new Error('a participant cannot be its own connection provider');
    const known = (await store.participants()).some((r) => r.participant.dipId === participant.connectionProvider);
    if (!known) throw new Error(`--connection-provider ${participant.connectionProvider} is not a registered participant`);
  }
  const apiKey = `dip_${randomBytes(24).toString('base64url')}`;
  await store.upsertParticipant(participant, hashApiKey(apiKey));
  return { participant, apiKey };
}
