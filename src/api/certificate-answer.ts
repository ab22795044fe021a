import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { revokedHelp, type SecurityControls } from '../pipeline/authenticate.js';
import { tlsPeer } from './request.js';

/**
 * The verification errors a client certificate is answered for, not dropped: it chains to a CA the
 * listener trusts, and is refused only for its dates or its revocation. The caller learns why (401,
 * a StandardResponse naming it) instead of a TLS close without an alert, which its client takes for
 * a network fault and retries for ever. Node cannot send a TLS alert of its choosing (it verifies the
 * client certificate after the handshake, and destroys the socket without one).
 */
const ANSWERED = new Set(['CERT_REVOKED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** Certificates whose refusal was told, before the set is emptied. */
const MAX_TOLD = 10_000;

const ADVICE = 'request a new certificate in the participant portal or from the DIP operator';

export interface CertificateAnswerOptions {
  /** The CAs the listener trusts (TlsMaterial.ca): a certificate answered must be issued and signed by one of them. */
  ca: readonly string[];
  revocation?: SecurityControls['revocation'];
  /** A connection closed after its handshake, with no answer (no certificate, an unknown issuer, any other error): for the activity log. */
  dropped: (socket: Socket, reason: string) => void;
  /** Told once per certificate while this listener runs (a client that retries for ever is not a flood in the log). */
  firstRefusal: (fingerprint256: string, help: string) => void;
  /** Answers with a 401 StandardResponse naming `help` and closes the connection. */
  answer: (req: FastifyRequest, reply: FastifyReply, help: string) => Promise<FastifyReply> | FastifyReply;
}

/** Splits PEM text into its certificates (a trusted-CA file may hold several). */
function certificates(pems: readonly string[]): X509Certificate[] {
  return pems.flatMap((pem) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
}

/** What the refused certificate's answer says of it. */
function dateHelp(code: string, cert: X509Certificate): string {
  const serial = cert.serialNumber.toUpperCase();
  return code === 'CERT_HAS_EXPIRED'
    ? `the TLS client certificate (serial ${serial}) expired at ${new Date(cert.validTo).toISOString()}: ${ADVICE}`
    : `the TLS client certificate (serial ${serial}) is not valid before ${new Date(cert.validFrom).toISOString()}: use the certificate it replaces until then, or check the clock of the machine that issued it`;
}

/**
 * Mutual TLS on the participant listener, judged by the DIP rather than by Node's rejectUnauthorized
 * (the listener is built with `rejectUnauthorized: false`): at the end of each handshake, before any
 * other listener sees the connection, one with no client certificate, a certificate from an issuer
 * the listener does not trust, or any verification error but the three in ANSWERED is destroyed, as
 * Node destroyed it. One that chains to a trusted CA but is revoked, expired or not yet valid is kept
 * open long enough to be told why: every request on it is answered 401 in the first hook (before
 * routing's other hooks, body parsing, authentication), and the connection is closed after it. No
 * route is reachable on it, health and documents included.
 *
 * The chain is checked again here (issuer and signature), not taken from OpenSSL's error alone: with
 * verification errors ignored OpenSSL reports the last one, and an expired certificate from an unknown
 * CA is reported as expired.
 *
 * Revocation is looked up per request too (the list in the store, the external CAs' CRLs): a
 * connection kept alive since before the revocation, or a TLS session resumed with a certificate
 * revoked since (a resumed session carries the verification result of its first handshake), is
 * answered the same way.
 *
 * Returns the answer a request on `socket` is refused with, or null: for the answers Node writes
 * without Fastify (CONNECT, a parser error, an unknown Expect), which must not be reachable either.
 */
export function useCertificateAnswer(app: FastifyInstance, options: CertificateAnswerOptions, awaitsContinue: (req: IncomingMessage) => boolean, drain: (req: IncomingMessage) => Promise<void>): (socket: Socket) => string | null {
  const trusted = certificates(options.ca);
  /** Connections whose certificate was refused at the handshake for its dates, with the answer. */
  const refusedAtHandshake = new WeakMap<Socket, string>();
  const told = new Set<string>();
  const chainsToTrusted = (cert: X509Certificate) => trusted.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));

  // Before Node's HTTP listener attaches its parser, and before the caps count the connection.
  app.server.prependListener('secureConnection', (socket: TLSSocket) => {
    if (socket.authorized) return;
    const code = socket.authorizationError instanceof Error ? ((socket.authorizationError as Error & { code?: string }).code ?? socket.authorizationError.message) : String(socket.authorizationError ?? '');
    const cert = socket.getPeerX509Certificate();
    if (!cert || !ANSWERED.has(code) || !chainsToTrusted(cert)) {
      options.dropped(socket, cert ? code || 'unverified certificate' : 'no client certificate');
      socket.destroy();
      return;
    }
    // A certificate the CRL lists is answered from the revocation list below when it knows it (its reason, its time).
    refusedAtHandshake.set(socket, code === 'CERT_REVOKED' ? `the TLS client certificate (serial ${cert.serialNumber.toUpperCase()}) was revoked (its CA's CRL lists it): ${ADVICE}` : dateHelp(code, cert));
  });

  const refusal = (socket: Socket): string | null => {
    const peer = tlsPeer(socket)?.peer;
    const revoked = peer ? (options.revocation?.revoked(peer.fingerprint256) ?? options.revocation?.revokedBy?.(peer.issuer, peer.serialNumber)) : undefined;
    if (revoked) return revokedHelp('the TLS client certificate', revoked);
    return refusedAtHandshake.get(socket) ?? null;
  };

  app.addHook('onRequest', async (req, reply) => {
    const help = refusal(req.raw.socket);
    if (help === null) return undefined;
    const fingerprint = tlsPeer(req.raw.socket)?.peer?.fingerprint256 ?? '';
    if (!told.has(fingerprint)) {
      // Bounded: the certificates of one CA, but a long-running listener forgets them now and then rather than grow.
      if (told.size >= MAX_TOLD) told.clear();
      told.add(fingerprint);
      options.firstRefusal(fingerprint, help);
    }
    // Read and dropped first: closed with request bytes unread, the connection would be reset and the
    // answer lost (as over the connection cap). A sender waiting for 100 Continue sends no body.
    if (!awaitsContinue(req.raw)) await drain(req.raw);
    // Node closes the connection once this answer is sent.
    reply.header('connection', 'close');
    return options.answer(req, reply, help);
  });
  return refusal;
}
