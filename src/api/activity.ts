import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import type { RateLimitSettings } from '../security/rate-limit.js';
import { RateLimiter } from '../security/rate-limit.js';
import { clientAddress } from '../security/address-list.js';
import { sourceKey } from '../security/sign-in-throttle.js';
import type { ActivitySink, RequestRecord } from '../pipeline/activity-recorder.js';
import { STORE_RETRY_AFTER_SECONDS } from '../pipeline/ingest.js';
import type { Registry } from '../pipeline/registry.js';
import { tlsPeer } from './request.js';
import { parserErrorStatus, type ParserError } from './parser-errors.js';
import type { StoppingAnswer } from './stopping.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: the activity log keeps a note, not the answer (message contents: evidence, a publication's bytes; the log itself). */
    keepAnswer?: false;
  }
  interface FastifyRequest {
    /**
     * The unique request ID (also in the `x-request-id` answer header) and the body answered; `refused`
     * when it was refused 503 because the log's backlog was full, `counted` when refused 429 by the
     * listener's request rate per address (useAddressRate): both counted, not kept one by one.
     */
    activity?: { id: string; at: number; body: string | null; refused?: true; counted?: true };
  }
}

export const REQUEST_ID_HEADER = 'x-request-id';

/** Who made a request, and for whom when that was someone else (a DIP Connection Provider's call). */
export interface RequestParty {
  caller: string | null;
  actingFor: string | null;
}

/** What a request refused for a full activity-log backlog is told (the listener's own answer shape carries it). */
export const BACKLOG_FULL_HELP = `the DIP cannot record this request in its API activity log now (its backlog is full: the log's store is down or slow) and serves no request it cannot record: nothing of this request was done; send it again unchanged in ${STORE_RETRY_AFTER_SECONDS} s`;

/**
 * Served even while the backlog is full, and recorded (kept beyond the cap: a few an operator or a
 * supervisor makes): the liveness probe (a 503 there gets the process restarted, losing every waiting
 * record), the readiness probe (which answers 503 in its own shape, saying why: a load balancer moves
 * requests away) and what the operator on call reads to find and fix the cause.
 */
const SERVED_WHEN_FULL = new Set(['/health', '/ready', '/metrics', '/admin/health', '/admin/alarms']);
/**
 * Only the routes themselves, on a listener that has them (a path on a listener without it, a 404, is
 * refused as any other request: the portals' and the anonymous listener's clients are not authenticated,
 * and each exempt request is a record kept in memory); and only up to EXEMPT_HEADROOM records beyond the
 * cap, so that probes or an operator's polling during a long outage cannot grow the backlog without end.
 */
const servedWhenFull = (req: FastifyRequest, sink: ActivitySink): boolean =>
  req.method === 'GET' && req.routeOptions.url !== undefined && SERVED_WHEN_FULL.has(req.routeOptions.url) && sink.accepting(EXEMPT_HEADROOM);
/** How many records the exempt requests may add beyond the backlog's cap. */
export const EXEMPT_HEADROOM = 10_000;

/** The operator API's answer shape, the default: `{"error": "<what and why>"}`. */
const errorAnswer: StoppingAnswer = (_req, reply, help) => reply.send({ error: help });

/**
 * Records every request this listener answers, accepted or refused, in the API activity log (spec
 * 5.8.1), and gives each a unique ID returned in `x-request-id`. Registered first, so the ID is set
 * before any other hook can answer (a refused token, a rate limit). Nothing here waits for storage:
 * the record joins the recorder's next batch. While that backlog is full (the log's store down or slow
 * for long), a new request is refused 503 with Retry-After in the listener's own shape (`refuse`): a
 * request that cannot be audited is not served, and none is dropped from the log unrecorded.
 */
export function registerActivityLog(
  app: FastifyInstance,
  sink: ActivitySink,
  listener: string,
  callerOf: (req: FastifyRequest, status: number) => string | null | RequestParty,
  now: () => number,
  /** false: no answer of this listener is kept (the portals' pages show personal data in HTML, which masking by key cannot read). */
  keepAnswers = true,
  refuse: StoppingAnswer = errorAnswer,
): void {
  app.addHook('onRequest', async (req, reply) => {
    const id = randomUUID();
    req.activity = { id, at: now(), body: null };
    void reply.header(REQUEST_ID_HEADER, id);
    if (sink.accepting() || servedWhenFull(req, sink)) return;
    req.activity.refused = true;
    reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS));
    reply.code(503);
    return refuse(req, reply, BACKLOG_FULL_HELP);
  });
  app.addHook('onSend', (req, _reply, payload, done) => {
    if (req.activity) {
      if (!keepAnswers || req.routeOptions.config.keepAnswer === false) req.activity.body = '[answer not kept]';
      else if (typeof payload === 'string') req.activity.body = payload;
      else if (Buffer.isBuffer(payload)) req.activity.body = payload.toString('utf8');
    }
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    const a = req.activity;
    const who = callerOf(req, reply.statusCode);
    const party = typeof who === 'object' && who !== null ? who : { caller: who, actingFor: null };
    const record: RequestRecord = {
      requestId: a?.id ?? randomUUID(),
      at: a?.at ?? now(),
      listener,
      caller: party.caller,
      actingFor: party.actingFor,
      remote: req.raw.socket?.remoteAddress ?? null,
      method: req.method,
      url: req.url,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 1000) / 1000,
      rawBody: a?.body ?? null,
    };
    if (a?.refused) sink.refused(record);
    else if (a?.counted) sink.counted(record);
    else sink.record(record);
    done();
  });
}

/**
 * Connections refused before HTTP (a failed TLS handshake: no client certificate, one from another CA, a
 * revoked one) and requests Node's parser refused, recorded as far as the socket tells.
 */
/** Records refused connections; returns the recorder of a TLS connection closed by the listener itself after its handshake (src/api/certificate-answer.ts). */
export function recordRefusedConnections(app: FastifyInstance, sink: ActivitySink, listener: string, now: () => number): (socket: Socket, reason: string) => void {
  const refused = (socket: Socket, method: string, status: number | null, refusal: object) => {
    const record: RequestRecord = { requestId: randomUUID(), at: now(), listener, caller: null, remote: socket.remoteAddress ?? null, method, url: '', status, durationMs: 0, rawBody: JSON.stringify(refusal) };
    // While the backlog is full these are counted with the refused requests (a flood of bad handshakes would fill memory).
    if (sink.accepting()) sink.record(record);
    else sink.refused({ ...record, listener: `${listener} before HTTP` });
  };
  app.server.on('tlsClientError', (err: Error & { code?: string }, socket: Socket) => {
    refused(socket, 'TLS', null, { refused: 'TLS handshake', reason: err.code ?? err.message });
  });
  app.server.on('clientError', (err: ParserError, socket: Socket) => {
    if (err.code === 'ECONNRESET') return;
    refused(socket, 'HTTP', parserErrorStatus(err), { refused: 'not valid HTTP', reason: err.code ?? err.message });
  });
  return (socket, reason) => refused(socket, 'TLS', null, { refused: 'TLS handshake', reason });
}

/**
 * The participant a request came from, as far as it went: admitted by the guard (the one that proved the
 * call: a DIP Connection Provider, with the participant it acted for), else its API key, else its certificate.
 */
export function participantCaller(deps: { registry: Pick<Registry, 'byApiKey'> }, req: FastifyRequest): RequestParty {
  if (req.admitted) {
    const { authenticated, caller } = req.admitted;
    return { caller: authenticated.dipId, actingFor: caller.dipId === authenticated.dipId ? null : caller.dipId };
  }
  return { caller: presentedCaller(deps, req), actingFor: null };
}

function presentedCaller(deps: { registry: Pick<Registry, 'byApiKey'> }, req: FastifyRequest): string | null {
  const apiKey = req.headers['x-api-key'];
  const known = typeof apiKey === 'string' ? deps.registry.byApiKey(apiKey) : undefined;
  if (known) return known.dipId;
  return tlsPeer(req.raw.socket)?.ids[0] ?? null;
}

/** How a listener answers a request over its rate, in its own shape: status 429 and Retry-After are set. */
export type OverRateAnswer = (req: FastifyRequest, reply: FastifyReply, over: { retryAfterSeconds: number; settings: RateLimitSettings }) => FastifyReply | Promise<FastifyReply>;

/**
 * A request rate per client address (a token bucket each; an IPv6 address by its /64, as the sign-in
 * throttle keys it) on a listener anyone can reach without a credential: the portals' and the anonymous
 * publications'. A request over it is answered 429 with Retry-After in the listener's own shape, before
 * anything of it is read (no session, no body), and the activity log counts it rather than keeping it
 * (ActivitySink.counted): a flood of them, kept one by one, fills the log's disk at the rate it is sent.
 * Registered after the activity log's hook, which gives the request its record. Off at 0 requests/s.
 */
export function useAddressRate(app: FastifyInstance, settings: RateLimitSettings, now: () => number, answer: OverRateAnswer): void {
  const limiter = new RateLimiter(settings);
  if (!limiter.enabled) return;
  app.addHook('onRequest', async (req, reply) => {
    const decision = limiter.take(sourceKey(clientAddress(req.raw.socket)), now());
    if (decision.ok) return undefined;
    if (req.activity) req.activity.counted = true;
    const retryAfterSeconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    reply.header('retry-after', String(retryAfterSeconds));
    reply.code(429);
    return answer(req, reply, { retryAfterSeconds, settings });
  });
}
