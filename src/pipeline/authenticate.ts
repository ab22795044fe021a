import type { Participant } from '../domain/participant.js';
import { verifyDipSignature } from '../security/signature.js';
import type { Registry } from './registry.js';

/** What the HTTP layer knows about a call, before anything is trusted. */
export interface CallerEvidence {
  apiKey: string | undefined;
  /** DIP IDs bound to the TLS client certificate (SAN urn:dip:participant:…); null when no certificate was shown. */
  tlsDipIds: readonly string[] | null;
  method: string;
  /** The URL the caller signed: scheme, host, port and path as received (or the configured public URL). */
  url: string;
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

export type Authentication =
  | { ok: true; participant: Participant }
  | { ok: false; status: 401 | 403; help: string };

/**
 * Three pieces of evidence must name the same participant: the API key, the mTLS client certificate and
 * the certificate the request is signed with (which must be the one registered for that participant).
 */
export async function authenticate(registry: Registry, call: CallerEvidence, now: Date, maxSkewMs: number): Promise<Authentication> {
  if (!call.apiKey) return { ok: false, status: 401, help: 'X-API-Key header is missing' };
  let participant = registry.byApiKey(call.apiKey);
  if (!participant) {
    // A participant onboarded a moment ago (perhaps by the CLI, in another process) is known at once.
    await registry.refresh();
    participant = registry.byApiKey(call.apiKey);
  }
  if (!participant) return { ok: false, status: 401, help: 'X-API-Key is not recognised' };
  if (call.tlsDipIds !== null && !call.tlsDipIds.includes(participant.dipId)) {
    return {
      ok: false,
      status: 403,
      help: `the TLS client certificate is bound to ${call.tlsDipIds.join(', ') || 'no DIP ID'}, not to ${participant.dipId} (the API key's participant)`,
    };
  }
  const verified = verifyDipSignature({ method: call.method, url: call.url, body: call.body, headers: call.headers, now, maxSkewMs });
  if (!verified.ok) return { ok: false, status: 401, help: `message signature: ${verified.detail}` };
  if (verified.certificate.fingerprint256 !== participant.certificateFingerprint) {
    return {
      ok: false,
      status: 401,
      help: `message signature: X-DIP-Signature-Certificate (SHA-256 ${verified.certificate.fingerprint256}) is not the certificate registered for ${participant.dipId}`,
    };
  }
  return { ok: true, participant };
}
