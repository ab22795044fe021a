import type { Participant } from '../domain/participant.js';
import type { SignatureReplayGuard } from '../ports/replay-guard.js';
import type { RevocationEntry } from '../security/revocation.js';
import { signatureHelp, verifyDipSignature } from '../security/signature.js';
import type { SignatureDate } from './clock-check.js';
import type { Registry } from './registry.js';

/** The TLS client certificate as the listener saw it. */
export interface TlsPeer {
  /** SHA-256 of the DER certificate, UPPER-case hex, no colons. */
  fingerprint256: string;
  serialNumber: string;
  /** Its issuer's name as node:crypto's X509Certificate writes it: with the serial, what a CA's CRL lists it by. */
  issuer: string;
}

/** What a refusal tells of a revocation: all a CA's CRL says of it. */
type Revoked = Pick<RevocationEntry, 'serialNumber' | 'reason' | 'revokedAt'>;

/**
 * Checks that need state beyond the registry, wired in by the HTTP layer (src/api/server.ts). Absent,
 * authentication still checks API key, TLS binding and signature, but not replay nor revocation.
 */
export interface SecurityControls {
  /** Refuses an X-DIP-Signature seen before within the skew window. */
  replay?: Pick<SignatureReplayGuard, 'check'>;
  /** Refuses revoked certificates (TLS client certificate and signing certificate). */
  revocation?: {
    revoked(fingerprint256: string): RevocationEntry | undefined;
    /**
     * The external CAs' CRLs (crlFiles), by issuer and serial: OpenSSL checks them at the handshake only,
     * and a connection kept alive since must be refused as well. Absent without crlFiles.
     */
    revokedBy?(issuer: string, serialNumber: string): Revoked | undefined;
    /**
     * Changes whenever what `revoked` and `revokedBy` answer may have changed (a list or a CRL re-read): a
     * connection's verdict is looked up again only then (src/api/certificate-answer.ts). Absent, it is
     * looked up on every request.
     */
    generation?(): number;
  };
}

/** What the HTTP layer knows about a call, before anything is trusted. */
export interface CallerEvidence {
  apiKey: string | undefined;
  /** DIP IDs bound to the TLS client certificate (SAN urn:dip:participant:…); null when no certificate was shown. */
  tlsDipIds: readonly string[] | null;
  /** The TLS client certificate itself; absent or null when unknown. */
  tlsPeer?: TlsPeer | null;
  method: string;
  /** The URL the caller signed: scheme, host, port and path as received (or the configured public URL). */
  url: string;
  /** URLs a caller may have signed instead by mistake (the Host-header URL behind a proxy): for the doctor only. */
  otherUrls?: readonly string[];
  /** The same URL written another way, accepted as well (VerifyInput.sameUrls). */
  sameUrls?: readonly string[];
  body: Buffer;
  /** The body is streamed (a large publication): the signature covers X-DIP-Content-Hash, and the body is checked against it once read. */
  streamedBody?: boolean;
  headers: Record<string, string | string[] | undefined>;
  controls?: SecurityControls;
}

/**
 * `dated`: the signature's date as checked against the DIP's clock, once the caller was identified, for
 * the DIP's own clock check (src/pipeline/clock-check.ts): refused for it, or the signature verified. A
 * signature refused for anything else (a bad signature, a certificate) says nothing of the clocks: not told.
 */
export type Authentication =
  | { ok: true; participant: Participant; dated?: SignatureDate }
  | { ok: false; status: 401 | 403; help: string; dated?: SignatureDate };

/** What a refusal of a revoked certificate says (also the participant listener's answer at the connection, src/api/certificate-answer.ts). */
export function revokedHelp(what: string, e: Revoked): string {
  return `${what} (serial ${e.serialNumber}) was revoked at ${e.revokedAt} (${e.reason}): ask the DIP operator for a new certificate`;
}

/** What of a call its headers and its TLS connection tell, before its body is read. */
export type HeaderEvidence = Pick<CallerEvidence, 'apiKey' | 'tlsDipIds' | 'tlsPeer' | 'controls'>;

/**
 * The part of authentication that needs neither the body nor the signature: the API key names a
 * participant, the TLS client certificate is bound to it and is not revoked. The first steps of
 * authenticate(), and all the listener judges before it tells a sender of `Expect: 100-continue` to send
 * its body (src/api/server.ts): a refusal here is the refusal authenticate() gives once the body is in.
 */
export async function identify(registry: Registry, call: HeaderEvidence): Promise<Authentication> {
  if (!call.apiKey) return { ok: false, status: 401, help: 'X-API-Key header is missing' };
  let known = registry.callerByApiKey(call.apiKey);
  if (!known.ok && known.status === 401) {
    // A participant onboarded a moment ago (perhaps by the CLI, in another process) is known at once.
    await registry.refresh();
    known = registry.callerByApiKey(call.apiKey);
  }
  // One not active now (suspended) is refused here, on every door that authenticates: Registry.refusal.
  if (!known.ok) return known;
  const { participant } = known;
  if (call.tlsDipIds !== null && !call.tlsDipIds.includes(participant.dipId)) {
    // The key's participant is not named: anyone holding a leaked key would learn whose it is. The operator
    // reads it in the activity log, which records the request under the API key's participant (participantCaller).
    return {
      ok: false,
      status: 403,
      help: `the TLS client certificate is bound to ${call.tlsDipIds.join(', ') || 'no DIP ID'}, not to the participant of this API key: use the API key, TLS client certificate and signing certificate of one participant`,
    };
  }
  const revocation = call.controls?.revocation;
  const peer = call.tlsPeer;
  const tlsRevoked = peer ? (revocation?.revoked(peer.fingerprint256) ?? revocation?.revokedBy?.(peer.issuer, peer.serialNumber)) : undefined;
  if (tlsRevoked) return { ok: false, status: 401, help: revokedHelp('the TLS client certificate', tlsRevoked) };
  return { ok: true, participant };
}

/**
 * Three pieces of evidence must name the same participant: the API key, the mTLS client certificate and
 * the certificate the request is signed with (which must be the one registered for that participant).
 * Neither certificate may be revoked, and a signature is good for one request only.
 */
export async function authenticate(registry: Registry, call: CallerEvidence, now: Date, maxSkewMs: number): Promise<Authentication> {
  const identified = await identify(registry, call);
  if (!identified.ok) return identified;
  let participant = identified.participant;
  const revocation = call.controls?.revocation;

  const verified = verifyDipSignature({ method: call.method, url: call.url, otherUrls: call.otherUrls, sameUrls: call.sameUrls, body: call.streamedBody ? null : call.body, headers: call.headers, now, maxSkewMs });
  const skewMs = verified.dateSkewMs;
  const skewRefused = !verified.ok && verified.reason === 'clock-skew';
  // Counted as verified only once it verifies: a signature refused for another reason is not the other side of the rule.
  const dated = skewMs === undefined || (!verified.ok && !skewRefused) ? {} : { dated: { participant: participant.dipId, skewMs, refused: skewRefused } };
  if (!verified.ok) return { ok: false, status: 401, help: signatureHelp(verified.reason, verified.detail, verified.stringToSign), ...dated };
  // From here the signature verifies: a refusal still shows what was verified, for the caller's records.
  const refuse = (check: string, detail: string): Authentication => ({ ok: false, status: 401, help: signatureHelp(check, detail, verified.stringToSign), ...dated });
  const presented = `X-DIP-Signature-Certificate (SHA-256 ${verified.certificate.fingerprint256})`;
  let signedWith = signingCertificateOf(participant, verified.certificate.fingerprint256, now);
  if (signedWith === 'unknown') {
    // A certificate rotated a moment ago (perhaps by the CLI, in another process) is known at once.
    await registry.refresh();
    participant = registry.byApiKey(call.apiKey ?? '') ?? participant;
    signedWith = signingCertificateOf(participant, verified.certificate.fingerprint256, now);
  }
  if (signedWith === 'unknown') {
    return refuse(
      'registered certificate',
      `${presented} is not the certificate registered for ${participant.dipId} (SHA-256 ${participant.certificateFingerprint}): sign with that certificate's key and send it`,
    );
  }
  if (signedWith === 'overlap-ended') {
    const ended = new Date(participant.previous?.validUntil ?? 0).toISOString();
    return refuse(
      'registered certificate',
      `${presented} is ${participant.dipId}'s previous certificate, whose overlap ended at ${ended}: sign with the current one (SHA-256 ${participant.certificateFingerprint})`,
    );
  }
  const signingRevoked = revocation?.revoked(verified.certificate.fingerprint256);
  if (signingRevoked) return refuse('revoked certificate', revokedHelp('the signing certificate', signingRevoked));

  const replay = call.controls?.replay;
  if (replay) {
    // The bytes that verified, not the header's text: base64 spells the same bytes many ways (padding
    // left off, the last letter's unused bits set), and each spelling verifies (canonicalSignature).
    const seen = await replay.check(verified.signature, now.getTime());
    if (seen.replayed) {
      return refuse(
        'replay',
        `this X-DIP-Signature was already used at ${seen.firstSeenAt.toISOString()}: the request was replayed. Sign every request afresh (a new X-DIP-Signature-Date)`,
      );
    }
  }
  return { ok: true, participant, ...dated };
}

/**
 * Which of the participant's certificates signed: the current one, or the one a rotation replaced while
 * its overlap lasts. The TLS listener accepts any certificate from the CA bound to the DIP ID, so only
 * the signing certificate is pinned here.
 */
function signingCertificateOf(participant: Participant, fingerprint256: string, now: Date): 'current' | 'previous' | 'overlap-ended' | 'unknown' {
  if (fingerprint256 === participant.certificateFingerprint) return 'current';
  const previous = participant.previous;
  if (!previous || previous.certificateFingerprint !== fingerprint256) return 'unknown';
  return now.getTime() <= previous.validUntil ? 'previous' : 'overlap-ended';
}
