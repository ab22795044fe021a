import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { MsgText } from '../domain/response-codes.js';
import { standardResponse } from '../domain/standard-response.js';
import type { CallerEvidence, SecurityControls, TlsPeer } from '../pipeline/authenticate.js';
import { CONTINUATION_HEADER } from '../security/continuation-token.js';
import { DIP_URN_PREFIX, sameOriginForms } from '../security/signature.js';
import type { ApiDeps } from './deps.js';

/**
 * What every route reads from a request (the caller's evidence) and how it answers (the published
 * StandardResponse): one module the listener and the routes both use, so neither imports the other.
 */

const controlsOf = new WeakMap<ApiDeps, SecurityControls>();

/** The replay guard and revocation list the listener was built with, for every request's authentication. */
export function useSecurityControls(deps: ApiDeps, controls: SecurityControls): void {
  controlsOf.set(deps, controls);
}

export function sendStandard(
  deps: ApiDeps,
  reply: FastifyReply,
  status: number,
  recipientId: string | null,
  message: MsgText,
  help: string | null,
): FastifyReply {
  return reply.code(status).send(standardResponse(new Date(deps.clock.now()), deps.config.dipId, recipientId, [{ message, help, DIPConnectionProviderID: providerFor(reply.request, recipientId) }]));
}

/**
 * The DIP Connection Provider that made this call for the participant it answers (published
 * StandardResponseBodyType: DIPConnectionProviderID, the "physical recipient (if different to recipient Id)"),
 * or null: the caller acted for itself, or the answer is not to the participant the provider acted for.
 */
export function providerFor(req: FastifyRequest, recipientId: string | null): string | null {
  const scope = req.admitted;
  return scope && recipientId !== null && scope.caller.dipId === recipientId && scope.authenticated.dipId !== recipientId ? scope.authenticated.dipId : null;
}

// The client certificate is read once per connection, not per request: parsing it per request halves
// throughput on kept-alive connections.
interface PeerIdentity {
  ids: readonly string[];
  peer: TlsPeer | null;
  /** The certificate's notAfter (ms since the epoch): a kept-alive connection is refused from then on (src/api/certificate-answer.ts). */
  notAfter: number;
}
const peers = new WeakMap<Socket, PeerIdentity | null>();

export function tlsPeer(socket: Socket): PeerIdentity | null {
  const cached = peers.get(socket);
  if (cached !== undefined) return cached;
  const cert = (socket as TLSSocket).getPeerX509Certificate?.();
  let identity: PeerIdentity | null = null;
  if (cert) {
    identity = {
      ids: (cert.subjectAltName ?? '')
        .split(', ')
        .filter((n) => n.startsWith(`URI:${DIP_URN_PREFIX}`))
        .map((n) => n.slice(4 + DIP_URN_PREFIX.length)),
      peer: { fingerprint256: cert.fingerprint256.replace(/:/g, '').toUpperCase(), serialNumber: cert.serialNumber.toUpperCase(), issuer: cert.issuer },
      notAfter: Date.parse(cert.validTo),
    };
  }
  peers.set(socket, identity);
  return identity;
}

/**
 * The URL a request's signature covers, as the caller requested it: rebuilt from the authority it names
 * (requestAuthority: one of the listener's names, src/api/server.ts refuses any other) and the request
 * target, or behind a proxy from publicUrl (held as clients request it, without a trailing '/',
 * loadConfig) and the request target.
 */
export function signedUrl(deps: ApiDeps, req: FastifyRequest): string {
  const target = originForm(req.raw.url);
  // https's default port is left out, as URL parsers (WHATWG URL, Postman) write the URL a client signs.
  return deps.config.publicUrl ? `${deps.config.publicUrl}${target}` : `https://${(requestAuthority(req.raw) ?? '').replace(/:443$/, '')}${target}`;
}

const ABSOLUTE_FORM = /^[a-z][a-z\d+.-]*:\/\/([^/?#]*)/i;

/**
 * The authority (`host[:port]`) a request names: an absolute-form target's (`POST https://host/path`), for
 * then a server must ignore Host (RFC 9112 3.2.2) and the URL requested, which an intermediary following
 * the RFC routes by and the client signs, is the target; else the Host header (undefined without one).
 */
export function requestAuthority(raw: IncomingMessage): string | undefined {
  const absolute = ABSOLUTE_FORM.exec(raw.url ?? '');
  return absolute ? absolute[1] : raw.headers.host;
}

/**
 * Sends messages (a pull or replay answer, already JSON) signed by the DIP (spec 5.2.2 pattern 1: the DIP
 * signs, the recipient verifies): the X-DIP-* headers over the answer's own string (answerStringToSign:
 * `RESPONSE <status>;` then the request's METHOD;url, never the string of a request or webhook call, and
 * last the `continuation` token, sent here as X-Continuation-Token, so the header and what is signed are
 * one value) and these very bytes. Encoded once and sent as that Buffer, so the hash covers exactly what
 * goes on the wire; the content type is the one Fastify gave the string before (a Buffer would not get the
 * charset added). One RSA signature per answer, on the libuv thread pool, as a webhook call's.
 */
export async function sendSigned(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, status: number, json: string, continuation: string | null = null): Promise<FastifyReply> {
  // No message, nothing to vouch for: an idle poll would otherwise cost an RSA signature (~1 ms of CPU and
  // a turn of the thread pool webhook signing shares), at a poller's rate. Never a page that names another.
  if (json === '[]' && continuation === null) return reply.code(status).type('application/json; charset=utf-8').send(json);
  if (continuation !== null) reply.header(CONTINUATION_HEADER, continuation);
  const body = Buffer.from(json, 'utf8');
  const headers = await deps.answerSigner.sign({ status, continuation }, req.method, signedUrl(deps, req), body);
  return reply.code(status).headers(headers).type('application/json; charset=utf-8').send(body);
}

/** Everything authentication needs from a request. */
export function evidence(deps: ApiDeps, req: FastifyRequest): CallerEvidence {
  const apiKey = req.headers['x-api-key'];
  const hostUrl = `https://${requestAuthority(req.raw) ?? ''}${originForm(req.raw.url)}`;
  const identity = tlsPeer(req.raw.socket);
  return {
    apiKey: Array.isArray(apiKey) ? undefined : apiKey,
    tlsDipIds: identity?.ids ?? null,
    tlsPeer: identity?.peer ?? null,
    method: req.method,
    url: signedUrl(deps, req),
    // Behind a proxy a caller may sign the address it reached the proxy by; the doctor says so.
    otherUrls: deps.config.publicUrl ? [hostUrl] : [],
    sameUrls: sameOriginForms(signedUrl(deps, req)),
    body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
    headers: req.headers,
    controls: controlsOf.get(deps),
  };
}

/**
 * The request target as a path (origin form): an absolute-form target (`POST https://host/path`, which a
 * server must accept, RFC 9112 3.2.2) without its scheme and authority, kept as received otherwise. The
 * signed URL is rebuilt as base + path: with the whole absolute target, it named the authority twice.
 */
function originForm(target: string | undefined): string {
  const received = target ?? '';
  const path = received.replace(ABSOLUTE_FORM, '');
  // `https://host` alone, or followed by a query, names the root.
  return path === received || path.startsWith('/') ? path : `/${path}`;
}

/** Why a body that is not labelled application/json is refused: the label it has, or that it has none. */
export function unacceptedMediaType(req: FastifyRequest): string {
  const type = req.headers['content-type'];
  return type === undefined ? 'a body without a Content-Type is not accepted: send application/json' : `Content-Type '${type.slice(0, 100)}' is not accepted: send application/json`;
}

/**
 * Why a JSON body's Content-Type charset is refused, or null (none given, or UTF-8): JSON is exchanged in
 * UTF-8 (RFC 8259 8.1), and a body sent as `charset=utf-16` was read as UTF-8 whatever it said.
 */
export function unacceptedCharset(req: FastifyRequest): string | null {
  const m = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(String(req.headers['content-type'] ?? ''));
  if (!m || /^utf-?8$/i.test(m[1]!)) return null;
  return `Content-Type charset '${m[1]!.slice(0, 40)}' is not accepted: JSON is exchanged in UTF-8 (RFC 8259 8.1); send charset=utf-8 or none`;
}

/** Why a body starting with a byte order mark is refused (RFC 8259 8.1: senders must not add one), or null. */
export function byteOrderMark(body: Uint8Array): string | null {
  return body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 'the body starts with a UTF-8 byte order mark (U+FEFF, bytes EF BB BF): send the JSON text without it (RFC 8259 8.1)' : null;
}

/**
 * Why a body sent with a Content-Encoding other than identity is refused, or null when it has none. The DIP
 * never decodes one: a signature covers the bytes as sent, and a publication is stored as uploaded.
 */
export function unacceptedContentEncoding(req: FastifyRequest, instead: string): string | null {
  const coding = String(req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  return coding === 'identity' ? null : `Content-Encoding '${coding.slice(0, 40)}' is not accepted: ${instead}`;
}

/** How long a refused request's body is read before it is answered anyway (a sender that never ends it holds nothing longer). */
const DRAIN_MS = 2_000;

/**
 * Resolves once the request's body has been read to its end (or it failed, or no byte came for `idleMs`,
 * or `maxMs` passed in all, or more than `maxBytes` came). For an answer after which the connection closes: closed with request bytes
 * unread, the socket sends a reset, which makes the client's kernel throw away the answer it had received
 * and not yet read.
 */
export function drained(
  body: IncomingMessage,
  { idleMs = DRAIN_MS, maxMs = DRAIN_MS, maxBytes = Infinity }: { idleMs?: number; maxMs?: number; maxBytes?: number } = {},
): Promise<void> {
  if (body.complete) return Promise.resolve();
  let read = 0;
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(idle);
      clearTimeout(whole);
      body.off('data', arrived);
      resolve();
    };
    // The idle pause is over only if no byte waits either: a process that got no CPU for a while (a
    // loaded machine) wakes with this timer overdue and the sender's bytes on the socket, and timers run
    // before the poll phase that reads them. The decision waits for that phase (setImmediate runs after
    // it): a byte read meanwhile has set a new pause.
    const idleOver = (): void => {
      const before = read;
      setImmediate(() => read === before && done());
    };
    let idle = setTimeout(idleOver, idleMs);
    const whole = setTimeout(done, maxMs);
    const arrived = (chunk: Buffer): void => {
      read += chunk.length;
      // Past `maxBytes` the sender is not owed its answer any more: the connection is closed unread.
      if (read > maxBytes) return done();
      clearTimeout(idle);
      idle = setTimeout(idleOver, idleMs);
    };
    body.on('data', arrived);
    body.once('end', done);
    body.once('error', done);
    body.once('close', done);
    body.resume();
  });
}

/**
 * Requests whose sender waits for 100 Continue that their route gives, not the listener: a streamed upload
 * (config `streamedBody`), whose route judges all its head tells (the signature, the publisher's role, its
 * metadata, a version that exists) before it reads a byte. A refusal then comes instead of the go-ahead
 * (RFC 9110 10.1.1), and the sender sends none of its body.
 */
const continueOwed = new WeakSet<IncomingMessage>();

/** The listener leaves the request's 100 Continue to its route (goAhead). */
export function deferContinue(req: IncomingMessage): void {
  continueOwed.add(req);
}

/** Tells a sender that waits for it to send its body: the route has judged what the head tells, and reads it now. */
export function goAhead(req: IncomingMessage, res: ServerResponse): void {
  if (continueOwed.delete(req) && !res.headersSent) res.writeContinue();
}

/** How long a refused sender that was never told to continue may send nothing before its connection closes. */
const WAITING_IDLE_MS = 250;

/**
 * Closes the connection after the answer to a request whose body may still be coming, in stages (RFC 9112
 * 9.6, a lingering close): the answer goes out, then what the sender still sends is read and dropped, until
 * the body ends, the sender closes, or `ms` or `bytes` are reached, and only then is the connection closed.
 * Node closes it as soon as an answer with Connection: close is written, and closed with bytes arriving,
 * the socket sends a reset, which makes the sender's kernel throw away the answer it had received and not
 * yet read: a client that writes its whole body before reading (Python requests, `curl -H 'Expect:'`) saw a
 * broken connection instead of the refusal. The bounds keep a refused sender from holding the connection
 * (one of its capped connections all the while) or the DIP's reading for long; past them the reset is
 * the sender's to take. The caller sets Connection: close on the answer.
 */
export function closeLingering(req: IncomingMessage, { ms, bytes }: { ms: number; bytes: number }): void {
  const socket = req.socket;
  let answered = false;
  let read = false;
  // Node's close after the answer (res._last: socket.destroySoon), held until the body is read or the bounds reached.
  const close = socket.destroySoon.bind(socket);
  const closeWhenDone = (): void => {
    if (answered && read) close();
  };
  socket.destroySoon = () => {
    answered = true;
    closeWhenDone();
  };
  // Read from now (so Node does not dump the body, unbounded, itself). A sender never told to continue
  // sends nothing, unless it stopped waiting (curl does after 1 s): closed once nothing has come for a
  // moment, not after the whole pause; one that is sending keeps the pause going.
  const idleMs = continueOwed.has(req) ? Math.min(ms, WAITING_IDLE_MS) : ms;
  void drained(req, { idleMs, maxMs: ms, maxBytes: bytes }).then(() => {
    read = true;
    closeWhenDone();
  });
}
