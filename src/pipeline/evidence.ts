import { createHash } from 'node:crypto';
import type { ReceivedRequest } from '../ports/archive.js';
import { sameOriginForms, verifyDipSignature } from '../security/signature.js';

/**
 * The evidence against repudiation (spec 5.2.2) for one transaction: the request it arrived in, byte for
 * byte as its sender signed it, with the X-DIP-* headers and the URL they were verified against, so that
 * anyone holding the sender's certificate can check the signature again without trusting the DIP; and the
 * DIP's own check of it, made now against the time of receipt.
 */
export interface Evidence {
  transactionId: string;
  channel: string;
  sender: string;
  receivedAt: string;
  request: {
    method: 'POST';
    /** The URL the signature was verified against at receipt; null for requests archived before it was kept. */
    url: string | null;
    headers: Record<string, string | string[]>;
    /** The body as received, base64. */
    body: string;
    /** SHA-256 of the body, base64 (what X-DIP-Content-Hash carries). */
    bodySha256: string;
  };
  verification: Verification;
}

export type Verification =
  | { result: 'valid'; stringToSign: string; signedBy: { subject: string; fingerprint256: string; dipIds: string[]; notAfter: string }; namesSender: boolean }
  | { result: 'invalid'; reason: string; detail: string; stringToSign: string }
  | { result: 'unsigned'; detail: string };

export function evidenceOf(transactionId: string, r: ReceivedRequest, maxSkewMs: number): Evidence {
  return {
    transactionId,
    channel: r.channel,
    sender: r.senderDipId,
    receivedAt: new Date(r.receivedAt).toISOString(),
    request: { method: 'POST', url: r.signature.url, headers: r.signature.headers, body: r.body.toString('base64'), bodySha256: createHash('sha256').update(r.body).digest('base64') },
    verification: verify(r, maxSkewMs),
  };
}

function verify(r: ReceivedRequest, maxSkewMs: number): Verification {
  if (Object.keys(r.signature.headers).length === 0) {
    return { result: 'unsigned', detail: `the DIP made this request itself (a status message, a publication notice or a test message): ${r.senderDipId} did not sign it` };
  }
  if (r.signature.url === null) {
    return { result: 'unsigned', detail: 'archived before the DIP kept the URL a signature covers: the headers and body are as received, but the signature cannot be checked again here' };
  }
  // The signature date was within the skew of the receipt when it was accepted: checked against that moment.
  const v = verifyDipSignature({ method: 'POST', url: r.signature.url, sameUrls: sameOriginForms(r.signature.url), body: r.body, headers: r.signature.headers, now: new Date(r.receivedAt), maxSkewMs });
  if (!v.ok) return { result: 'invalid', reason: v.reason, detail: v.detail, stringToSign: v.stringToSign };
  const c = v.certificate;
  return {
    result: 'valid',
    stringToSign: v.stringToSign,
    signedBy: { subject: c.subject, fingerprint256: c.fingerprint256, dipIds: c.dipIds, notAfter: c.notAfter.toISOString() },
    namesSender: c.dipIds.includes(r.senderDipId),
  };
}
