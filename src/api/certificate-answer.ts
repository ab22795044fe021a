import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { revokedHelp, type SecurityControls, type TlsPeer } from '../pipeline/authenticate.js';
import type { Clock } from '../ports/clock.js';
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
  /** The time a kept-alive connection's certificate is judged by (its notAfter), and the sweep of idle connections. */
  clock: Pick<Clock, 'now' | 'every'>;
  /** How often idle connections are looked at for a certificate that expired or was revoked since their handshake. */
  sweepMs: number;
  /** A connection closed after its handshake, with no answer (no certificate, an unknown issuer, any other error): for the activity log. */
  dropped: (socket: Socket, reason: string) => void;
  /** Told once per certificate while this listener runs (a client that retries for ever is not a flood in the log); an idle connection closed for it too. */
  firstRefusal: (fingerprint256: string, help: string) => void;
  /** Answers with a 401 StandardResponse naming `help` and closes the connection. */
  answer: (req: FastifyRequest, reply: FastifyReply, help: string) => Promise<FastifyReply> | FastifyReply;
}

/** Splits PEM text into its certificates (a trusted-CA file may hold several). */
function certificates(pems: readonly string[]): X509Certificate[] {
  return pems.flatMap((pem) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
}

/** What an expired certificate's answer says of it: at the handshake, or on a connection that outlived it. */
function expiredHelp(serial: string, notAfter: number): string {
  return `the TLS client certificate (serial ${serial}) expired at ${new Date(notAfter).toISOString()}: ${ADVICE}`;
}

/** What the refused certificate's answer says of it. */
function dateHelp(code: string, cert: X509Certificate): string {
  const serial = cert.serialNumber.toUpperCase();
  return code === 'CERT_HAS_EXPIRED'
    ? expiredHelp(serial, Date.parse(cert.validTo))
    : `the TLS client certificate (serial ${serial}) is not valid before ${new Date(cert.validFrom).toISOString()}: use the certificate it replaces until then, or check the clock of the machine that issued it`;
}

/** A socket in Node's HTTP server: `_httpMessage` is the response in progress on it, null between requests. */
type HttpSocket = TLSSocket & { _httpMessage?: unknown };

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
 * A connection outlives its handshake's verdict: every request on it is judged again, cheaply (the
 * certificate is read once per connection): its notAfter against the injected clock, and its revocation
 * looked up again whenever the revocation lists in force changed (their generation). A connection kept
 * alive past its certificate's expiry or revocation, or a TLS session resumed with a certificate revoked
 * since (a resumed session carries the verification result of its first handshake), is answered the same
 * way. One idle between requests is closed by a sweep every `sweepMs` (one timer for the listener, not
 * one per connection): its client's next connection is refused at the handshake and told why there.
 *
 * Returns the answer a request on `socket` is refused with, or null: for the answers Node writes
 * without Fastify (CONNECT, a parser error, an unknown Expect), which must not be reachable either.
 */
export function useCertificateAnswer(app: FastifyInstance, options: CertificateAnswerOptions, awaitsContinue: (req: IncomingMessage) => boolean, drain: (req: IncomingMessage) => Promise<void>): (socket: Socket) => string | null {
  const trusted = certificates(options.ca);
  /** Connections whose certificate was refused at the handshake for its dates, with the answer. */
  const refusedAtHandshake = new WeakMap<Socket, string>();
  /** Each connection's revocation verdict, and the generation of the lists it was looked up in. */
  const revocationChecked = new WeakMap<Socket, { generation: number; help: string | null }>();
  /** Connections accepted at the handshake, open: what the sweep looks at. */
  const accepted = new Set<HttpSocket>();
  const told = new Set<string>();
  const chainsToTrusted = (cert: X509Certificate) => trusted.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));

  // Before Node's HTTP listener attaches its parser, and before the caps count the connection.
  app.server.prependListener('secureConnection', (socket: TLSSocket) => {
    if (socket.authorized) {
      accepted.add(socket);
      socket.once('close', () => accepted.delete(socket));
      return;
    }
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

  const tell = (socket: Socket, help: string): void => {
    const fingerprint = tlsPeer(socket)?.peer?.fingerprint256 ?? '';
    if (told.has(fingerprint)) return;
    // Bounded: the certificates of one CA, but a long-running listener forgets them now and then rather than grow.
    if (told.size >= MAX_TOLD) told.clear();
    told.add(fingerprint);
    options.firstRefusal(fingerprint, help);
  };

  /** Why `peer`, the certificate of `socket`, is revoked, or null: looked up again only when the lists changed. */
  const revocationOf = (socket: Socket, peer: TlsPeer): string | null => {
    const generation = options.revocation?.generation?.();
    const checked = revocationChecked.get(socket);
    if (checked !== undefined && checked.generation === generation) return checked.help;
    const revoked = options.revocation?.revoked(peer.fingerprint256) ?? options.revocation?.revokedBy?.(peer.issuer, peer.serialNumber);
    const help = revoked ? revokedHelp('the TLS client certificate', revoked) : null;
    if (generation !== undefined) revocationChecked.set(socket, { generation, help });
    return help;
  };

  const refusal = (socket: Socket): string | null => {
    const identity = tlsPeer(socket);
    if (!identity?.peer) return refusedAtHandshake.get(socket) ?? null;
    const revoked = revocationOf(socket, identity.peer);
    if (revoked !== null) return revoked;
    const atHandshake = refusedAtHandshake.get(socket);
    if (atHandshake !== undefined) return atHandshake;
    return options.clock.now() > identity.notAfter ? expiredHelp(identity.peer.serialNumber, identity.notAfter) : null;
  };

  // A connection between requests whose certificate expired or was revoked since its handshake is closed;
  // one in a request is answered at its next (the hook below). Closed without an answer: none was asked for,
  // and a client reconnecting is refused at the handshake and told why there.
  const stopSweep = options.clock.every(options.sweepMs, () => {
    for (const socket of accepted) {
      if (socket._httpMessage) continue;
      const help = refusal(socket);
      if (help === null) continue;
      accepted.delete(socket);
      tell(socket, help);
      socket.destroy();
    }
  });
  app.addHook('onClose', async () => stopSweep());

  app.addHook('onRequest', async (req, reply) => {
    const help = refusal(req.raw.socket);
    if (help === null) return undefined;
    tell(req.raw.socket, help);
    // Read and dropped first: closed with request bytes unread, the connection would be reset and the
    // answer lost (as over the connection cap). A sender waiting for 100 Continue sends no body.
    if (!awaitsContinue(req.raw)) await drain(req.raw);
    // Node closes the connection once this answer is sent.
    reply.header('connection', 'close');
    return options.answer(req, reply, help);
  });
  return refusal;
}
