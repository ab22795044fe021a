import type { ErrorObject } from 'ajv';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { METHODS as HTTP_METHODS, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { isUtf8 } from 'node:buffer';
import Negotiator from 'negotiator';
import type { Server as TlsServer } from 'node:tls';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { MSG } from '../domain/response-codes.js';
import { API_VERSION_HEADER, versionRefusal } from '../domain/api-version.js';
import { STORE_RETRY_AFTER_SECONDS } from '../pipeline/ingest.js';
import { standardStopping, useGracefulStop } from './stopping.js';
import { rawAnswerSecurityHeaders, useApiSecurityHeaders } from './security-headers.js';
import { storeFailureKind } from '../ports/errors.js';
import type { SignatureReplayGuard } from '../ports/replay-guard.js';
import { canonicalSignature, DIP_HEADER_SIGNATURE } from '../security/signature.js';
import { standardResponse } from '../domain/standard-response.js';
import { jsonBodyExcess, scanJsonBatch } from '../security/json-depth.js';
import { jsonCountsOf } from '../config.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's pipeline checks the JSON body's depth before it parses it (POST /dip-channel/{id}, /validate). */
    jsonDepthCheckedByPipeline?: true;
    /** The body is a batch whose entries are each held to http.maxJsonValues, as the message routes' are (POST /statusmessage). */
    jsonValuesPerItem?: true;
    /**
     * The route authenticates its caller itself (the ingest pipeline, a streamed upload), as the guard does
     * those with `access`: a caller whose key is refused is refused before it is told to send its body.
     */
    authenticatesInRoute?: true;
  }
}
import type { RateLimits } from '../ports/rate-limits.js';
import { RateLimiter } from '../security/rate-limit.js';
import { identify, type SecurityControls } from '../pipeline/authenticate.js';
import { channelRoutes } from './routes/channel.js';
import { pubconfigRoutes } from './routes/pubconfig.js';
import { certificateRoutes } from './routes/certificates.js';
import { healthRoutes } from './routes/health.js';
import { pullRoutes } from './routes/pull.js';
import { replayRoutes } from './routes/replay.js';
import { statusRoutes } from './routes/status.js';
import { validateRoutes } from './routes/validate.js';
import { maintenanceRoutes } from './routes/maintenance.js';
import { registerPublicationRoutes } from './routes/publications.js';
import { registerAlarmRoutes } from './routes/alarms.js';
import { registerSavedReportApi } from './routes/saved-reports.js';
import { registerParticipantRoutes } from './routes/participants.js';
import { registerReportRoutes, reportNames } from './report-routes.js';
import { admitted } from './guard.js';
import type { ApiDeps } from './deps.js';
import { registerRequestMetrics } from './metrics.js';
import { participantCaller, recordRefusedConnections, registerActivityLog } from './activity.js';
import { registerParticipantDocs } from './participant-docs.js';
import { dataPortalRoutes } from './data-portal.js';
import { asyncApiRoutes } from './asyncapi.js';
import { registerGuard } from './guard.js';
import { useOverloadGuard } from './overload.js';
import { type CapHolder, openFileLimit, participantConnectionLimit, participantHolder, standardOverCap, useConnectionCap, useHandshakeGuard, useListenerCap } from './connection-cap.js';
import { recordOperations } from './operations.js';
import { useCertificateAnswer } from './certificate-answer.js';
import { describeBodyErrors } from './schemas.js';
import { answers, documentHostAnswer, GUARDED } from './route-schemas.js';
import { byteOrderMark, deferContinue, drained, evidence, requestAuthority, sendStandard, tlsPeer, unacceptedCharset, unacceptedContentEncoding, unacceptedMediaType, useSecurityControls } from './request.js';
import { useAnswerDeadlines } from '../security/answer-deadlines.js';
import { useRequestDeadlines } from './request-deadlines.js';
import { listenerContext, serveRenewedCertificate, type ListenerCertificate } from '../security/server-certificate.js';
import { hostHeaderName, hostKnown, isLoopback, listenerHostNames } from '../security/host-names.js';
import { parserErrorStatus, unrecognisedMethod, type ParserError } from './parser-errors.js';
import { loggedUrl } from '../domain/activity.js';

/** Longest path segment (channel ID, DIP ID) the router accepts. */
const MAX_PARAM_LENGTH = 200;
/** The participant listener's security headers (the API version with them) on an answer written without Fastify, whose onSend hook never sees it. */
const RAW_SECURITY_HEADERS = rawAnswerSecurityHeaders({ noStore: true });
/** How long a connection refused by the DIP itself is read and drained before it is closed (answerAndClose). */
const LINGER_MS = 2_000;
/** At most this many connections linger at once; beyond, a refused connection is closed at once (a flood of junk holds no more). */
const MAX_LINGERING = 256;

export interface TlsMaterial {
  /** The DIP's server key and certificate: installed again for the next handshakes when renewed. */
  certificate: ListenerCertificate;
  /**
   * CAs a participant's client certificate must chain to. With a CRL installed OpenSSL wants a CRL
   * from every issuer in a client's chain: all of them must be the environment's CA.
   */
  ca: string[];
}

/** Security state shared with the rest of the DIP (src/app.ts builds it). */
export interface ServerSecurity extends SecurityControls {
  /** The replay guard; a request answered "send it again unchanged" frees its signature with `release`. */
  replay?: Pick<SignatureReplayGuard, 'check' | 'release'>;
  /** Revocation list in force; its CRL is installed in the TLS listener, and replaced whenever it changes. */
  revocation?: SecurityControls['revocation'] & {
    /** One CRL, or several (one per issuer: node's tls `crl` option reads one per element). */
    crlPem(): string | string[] | undefined;
    onCrl(listener: (crlPem: string | string[]) => void): void;
  };
  /** Fair-use buckets (shared by every node in a cluster); per process from the configuration when absent. */
  rateLimits?: RateLimits;
}

/**
 * The participant-facing HTTPS listener: mutual TLS (a client certificate from the environment's CA is
 * required at the handshake), routes as published in DIP API 2.1.0, and every answer in the
 * StandardResponse shape, errors included.
 */
export function buildServer(deps: ApiDeps, tls: TlsMaterial, security: ServerSecurity = {}): FastifyInstance {
  const limits = deps.config.http;
  const jsonCounts = jsonCountsOf(deps.config);
  const namesNow = () => listenerHostNames({ bound: deps.config.host, certificatePem: tls.certificate.inForce().certPem, publicUrl: deps.config.publicUrl, allowed: deps.config.allowedHosts, setting: 'allowedHosts' });
  let hostNames = namesNow();
  // A renewed certificate may name hosts the one before did not: they are this listener's from its installation.
  tls.certificate.onChange(() => {
    try {
      hostNames = namesNow();
    } catch (err) {
      deps.logger.error({ err }, "the renewed TLS certificate's names could not be read; the participant API keeps the Host names of the one before");
    }
  });
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  const secureContext = (crl: string | string[] | undefined) => ({
    ...listenerContext(tls.certificate.inForce()),
    ca: tls.ca,
    ...(crl ? { crl } : {}),
  });
  /**
   * A StandardResponse for an answer Fastify does not give (it has no request, or Node answers first): MSG1001
   * for bytes that are not the HTTP asked for; MSG1000, as Fastify's routes answer them, for a request too
   * slow and for a method refused (405, 501).
   */
  const refusalBody = (status: number, help: string): string =>
    JSON.stringify(standardResponse(new Date(deps.clock.now()), deps.config.dipId, null, [{ message: status === 408 || status === 405 || status === 501 || status === 401 ? MSG.processingFailed : MSG.schemaFailure, help }]));
  /** Connections whose bad bytes are answered after the request before them (clientErrorHandler). */
  const answeringFirst = new WeakSet<Socket>();
  /** Connections answered and closing: what still arrives is read and dropped (answerAndClose). */
  const closing = new WeakSet<Socket>();
  let lingering = 0;
  /**
   * Answers on the socket itself (Fastify has no request to answer yet, or has lost it), then closes it.
   * `linger` (bytes that are not HTTP, from a sender that may still be sending): half-closed at once,
   * destroyed LINGER_MS later, reading and dropping what the sender still sends in between (the parser
   * raises an error for each chunk: clientErrorHandler ignores them). Destroyed at once with bytes unread,
   * the socket would send a reset, and a reset makes the sender's kernel throw away what it had received
   * and not yet read: the answers (under load, a test's client lost a 201 and this refusal both). Apache's
   * lingering close, for the same reason. A deadline missed (handshake, headers) closes at once.
   */
  const answerAndClose = (socket: Socket, status: number, help: string, linger: boolean, headers: Readonly<Record<string, string>> = {}): void => {
    closing.add(socket);
    if (socket.writable) {
      const body = refusalBody(status, help);
      const headerLines = Object.entries({ ...headers, ...RAW_SECURITY_HEADERS }).map(([name, value]) => `${name}: ${value}\r\n`).join('');
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headerLines}Connection: close\r\n\r\n${body}`,
      );
    }
    if (!linger || lingering >= MAX_LINGERING) {
      socket.destroy();
      return;
    }
    lingering += 1;
    socket.once('close', () => (lingering -= 1));
    // The sender closed its side: nothing more to drain.
    socket.once('end', () => socket.destroy());
    socket.end();
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
  const app = Fastify({
    https: {
      ...secureContext(security.revocation?.crlPem()),
      requestCert: true,
      // The client certificate is judged by useCertificateAnswer at the end of the handshake: refused as
      // Node refused it (the connection destroyed), except one from a trusted CA that is revoked, expired
      // or not yet valid, whose requests are answered 401 naming why (SECURITY.md, "Refused certificates").
      rejectUnauthorized: false,
      // Slow clients: a TLS handshake and a header block each have a deadline here; bodies have theirs
      // in useRequestDeadlines (a publication upload may take as long as it keeps bytes coming).
      handshakeTimeout: limits.handshakeTimeoutMs,
      headersTimeout,
      requestTimeout: 0,
      connectionsCheckingInterval: limits.connectionsCheckingIntervalMs,
      maxHeaderSize: limits.maxHeaderBytes,
      // Answered by the DIP (a StandardResponse naming the header), not by Node with an empty body.
      requireHostHeader: false,
    },
    requestTimeout: 0, // Fastify sets server.requestTimeout from its own option
    bodyLimit: deps.config.bodyLimitBytes,
    routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    keepAliveTimeout: 75_000,
    // A stopping listener answers in the DIP's own shape (useGracefulStop), not Fastify's bare 503.
    return503OnClosing: false,
    logger: false,
    // Errors Node's HTTP parser raises before Fastify sees a request: answered in the StandardResponse
    // shape too, then the connection is closed.
    clientErrorHandler: (err: ParserError, socket: Socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed || closing.has(socket)) return;
      // A refused client certificate is all such a connection is told (useCertificateAnswer).
      const refusedCertificate = certificateRefusal(socket);
      if (refusedCertificate !== null) {
        answerAndClose(socket, 401, refusedCertificate, true);
        return;
      }
      const status = parserErrorStatus(err);
      const help =
        status === 408
          ? `the request did not arrive in time: headers within ${headersTimeout} ms`
          : status === 505
            ? 'the HTTP version is not supported: send HTTP/1.1'
            : status === 431
              ? `the request headers are larger than the limit of ${limits.maxHeaderBytes} bytes`
              : status === 501
                ? `the method ${unrecognisedMethod(err)} is not implemented (method names are case-sensitive: RFC 9110 9.1)`
                : `the request is not valid HTTP/1.1 (${err.code ?? err.message})`;
      // The bytes may follow a request that was whole (its body read complete: a body longer than its
      // Content-Length runs on into what the parser takes for the next request): that request is answered
      // first (it may be a 201, durable by then; without it the sender would resend and meet MSG1006), then
      // the refusal, if the connection is still open (Node closes it after an answer with Connection: close).
      // The parser stays in error and raises this again for every further chunk: read nothing more meanwhile.
      if (answeringFirst.has(socket)) return;
      const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (inFlight && !inFlight.writableFinished && inFlight.req.complete) {
        answeringFirst.add(socket);
        socket.pause();
        let answered = false;
        const after = () => {
          if (answered) return;
          answered = true;
          answerAndClose(socket, status, help, true);
        };
        inFlight.once('finish', after).once('close', after);
        return;
      }
      answerAndClose(socket, status, help, err.code?.startsWith('HPE_') === true);
    },
    // Errors Fastify raises while routing, before any handler runs (a path segment longer than
    // maxParamLength, a malformed percent-encoding), would otherwise be answered in Fastify's own
    // {error, code, message} shape instead of a StandardResponse.
    frameworkErrors: (error, req, reply) => {
      // Fastify raises these before any hook: a connection whose certificate is refused is told only that.
      const refusedCertificate = certificateRefusal(req.raw.socket);
      if (refusedCertificate !== null) {
        void reply.header('connection', 'close');
        void sendStandard(deps, reply, 401, null, MSG.processingFailed, refusedCertificate);
        return;
      }
      const path = (req.raw.url ?? '').split('?')[0] ?? '';
      const shown = path.length > 80 ? `${path.slice(0, 80)}…` : path;
      if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
        // No channel or DIP ID is that long: the same answer as for any other unknown resource.
        void sendStandard(deps, reply, 404, null, badChannelSegment(path) ? MSG.interfaceIdInvalid : MSG.processingFailed, `no such resource: ${req.raw.method ?? ''} ${shown} (a path segment is longer than ${MAX_PARAM_LENGTH} characters)`);
      } else if (error.code === 'FST_ERR_BAD_URL') {
        void sendStandard(deps, reply, 400, null, badChannelSegment(path) ? MSG.interfaceIdInvalid : MSG.processingFailed, `the path ${shown} is not a valid URL (malformed percent-encoding)`);
      } else {
        deps.logger.error({ err: error, url: path }, 'request failed while routing');
        void sendStandard(deps, reply, 500, null, MSG.processingFailed, 'internal error');
      }
    },
  });

  // CONNECT is not routed: Node hands it to a 'connect' listener (the socket leaves the HTTP parser, as for a
  // tunnel), and without one destroys the socket unanswered. The DIP is no proxy: 405 on any target, with the
  // methods a published path takes in Allow (none for an authority-form target such as host:port).
  app.server.on('connect', (req: IncomingMessage, socket: Socket) => {
    const refusedCertificate = certificateRefusal(socket);
    if (refusedCertificate !== null) {
      answerAndClose(socket, 401, refusedCertificate, true);
      return;
    }
    const target = req.url ?? '';
    const path = target.split('?')[0] ?? '';
    const known = path.startsWith('/') ? notAllowed.on(path) : undefined;
    const shown = known?.published ?? (target.length > 80 ? `${target.slice(0, 80)}…` : target);
    answerAndClose(socket, 405, `CONNECT is not allowed on ${shown}; allowed: ${known?.allow ?? 'none (the DIP is not a proxy)'}`, true, { Allow: known?.allow ?? '' });
  });
  // Security headers and the API version on every answer, refusals while stopping included (those written without Fastify: RAW_SECURITY_HEADERS).
  useApiSecurityHeaders(app, { noStore: true });
  // Node answers an Expect it does not know with an empty 417 unless the server listens for it.
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const refusedCertificate = certificateRefusal(req.socket);
    if (refusedCertificate !== null) {
      const refusal = refusalBody(401, refusedCertificate);
      res.writeHead(401, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(refusal), ...RAW_SECURITY_HEADERS, connection: 'close' }).end(refusal);
      return;
    }
    const body = refusalBody(417, `Expect '${String(req.headers.expect).slice(0, 60)}' cannot be met: only 100-continue is understood`);
    res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...RAW_SECURITY_HEADERS, connection: 'close' }).end(body);
  });
  // Expect: 100-continue is answered when the body is about to be read, not as the headers arrive (Node's
  // default): a submission refused by a hook before that (overload, rate limit) is refused before its
  // sender sends a byte of the body, instead of after reading and dropping it. Node decides which requests
  // expect it (HTTP/1.1, its own parsing of the header): those it hands to checkContinue.
  const expectsContinue = new WeakSet<IncomingMessage>();
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    expectsContinue.add(req);
    app.server.emit('request', req, res);
  });
  // A Content-Length over the route's limit gets no go-ahead: Fastify refuses it 413 unread, and the sender
  // that waited sends none of it (the error handler then has nothing to drain). Not on a route that streams
  // its body (publications): no parser applies the limit there, the route its own.
  // Nor does a caller whose API key or client certificate is refused (identify: the part of authentication
  // the headers and the TLS connection decide): the route is given an empty body instead of the one
  // announced, so its own authentication answers, with the very refusal it gives after a body (the guard's,
  // the pipeline's, /validate's in its configured form), and the connection is closed after it, since the
  // announced body never comes (as after the 413 above). Only on routes that authenticate: elsewhere a key
  // is not asked for, and a wrong one refuses nothing.
  // A sender already sending its body (it did not wait for the go-ahead, or stopped waiting: curl after
  // 1 s) is read and answered as one that did not ask (the 413 after its body drained, the refused key
  // after its body read): closed with its bytes arriving, the connection would be reset, and the reset
  // lose the answer (hostile/bodies, hostile/expect-continue).
  /** Requests whose sender may be sending its body though it asked for 100 Continue: told to, or not waiting. */
  const sending = new WeakSet<IncomingMessage>();
  app.addHook('preParsing', async (req, reply) => {
    if (!expectsContinue.has(req.raw) || reply.raw.headersSent) return undefined;
    const config = req.routeOptions.config;
    const overLimit = config.streamedBody !== true && Number(req.headers['content-length']) > req.routeOptions.bodyLimit;
    const refused = !overLimit && (config.access !== undefined || config.authenticatesInRoute === true) && !(await identify(deps.registry, evidence(deps, req))).ok;
    // Judged after the key, whose look-up may wait: what arrived meanwhile counts.
    if (req.raw.readableLength > 0) sending.add(req.raw);
    if (overLimit || (refused && sending.has(req.raw))) return undefined;
    // A streamed upload's route judges the rest of its head (signature, role, metadata, a version that
    // exists) before it reads a byte, and gives the go-ahead itself: a refusal comes instead of it.
    const streamed = config.streamedBody === true;
    if (streamed) deferContinue(req.raw);
    if (refused) {
      reply.header('connection', 'close');
      return unreadBody(req.headers['content-length']);
    }
    if (streamed) return undefined;
    sending.add(req.raw);
    reply.raw.writeContinue();
    return undefined;
  });

  let droppedAfterHandshake = (_socket: Socket, _reason: string): void => undefined;
  if (deps.activity) {
    // First of all hooks: every request gets its ID and its record, whichever hook answers it.
    registerActivityLog(app, deps.activity, 'participant', (req) => participantCaller(deps, req), () => deps.clock.now(), true, standardStopping(deps));
    droppedAfterHandshake = recordRefusedConnections(app, deps.activity, 'participant', () => deps.clock.now());
  }
  // Next: a connection whose client certificate is refused reaches nothing else (each request answered 401, recorded by the log above).
  const certificateRefusal = useCertificateAnswer(
    app,
    {
      ca: tls.ca,
      revocation: security.revocation,
      clock: deps.clock,
      sweepMs: limits.connectionsCheckingIntervalMs,
      dropped: (socket, reason) => droppedAfterHandshake(socket, reason),
      firstRefusal: (fingerprint256, help) => deps.logger.warn({ fingerprint256 }, `a participant's TLS client certificate is refused: ${help}`),
      answer: (_req, reply, help) => sendStandard(deps, reply, 401, null, MSG.processingFailed, help),
    },
    (raw) => expectsContinue.has(raw),
    (raw) => drained(raw),
  );
  // Next (the request has its ID, its record is made): a stopping DIP refuses what still arrives before anything reads or counts it.
  useGracefulStop(app, deps.config.http.stopDrainMs, standardStopping(deps));
  if (deps.metrics) registerRequestMetrics(app, deps.metrics, 'participant');
  // The body's deadline starts as soon as the headers are in, before any hook that may wait.
  useRequestDeadlines(app, limits, deps.clock, (socket, help) => answerAndClose(socket, 408, help, false));
  useAnswerDeadlines(app, limits, deps.clock, (url, sent) => deps.logger.warn({ url: loggedUrl(url), sentBytes: sent, idleMs: limits.downloadIdleTimeoutMs }, 'download cut off: the client took no byte for the idle timeout'));

  recordOperations(app);
  useSecurityControls(deps, { replay: security.replay, revocation: security.revocation });
  // A renewed server certificate, for the next handshakes, with the CRL in force.
  serveRenewedCertificate(app.server, tls.certificate, () => secureContext(security.revocation?.crlPem()), 'participant', deps.logger);
  security.revocation?.onCrl((crl) => {
    // New connections get the new CRL; established ones are judged again per request (useCertificateAnswer,
    // authenticate()) and closed while idle by useCertificateAnswer's sweep.
    try {
      (app.server as unknown as TlsServer).setSecureContext(secureContext(crl));
      deps.logger.info({}, 'TLS listener now refuses the revoked certificates');
    } catch (err) {
      deps.logger.error({ err }, 'the new CRL could not be installed in the TLS listener; revoked certificates are still refused per request');
    }
  });

  // One client's connections past its cap: every request on one is answered 429 before anything else is judged.
  // A connection kept open only to be told its certificate is refused (revoked, expired) counts apart from
  // the participant its certificate names: whoever holds an old certificate and key could otherwise take
  // that participant's places (review5c: three idle such connections had its live client answered 429).
  const holderOf = (socket: Socket): CapHolder => {
    if (certificateRefusal(socket) === null) return participantHolder(socket);
    const fingerprint = tlsPeer(socket)?.peer?.fingerprint256 ?? socket.remoteAddress ?? '';
    return { key: `r:${fingerprint}`, caller: null, who: `the refused certificate ${fingerprint}` };
  };
  const connections = useConnectionCap(app, limits.maxConnectionsPerClient, holderOf, standardOverCap(deps), (raw) => expectsContinue.has(raw));
  deps.metrics?.watchConnections('participant', connections);
  const maxConnections = limits.maxConnections ?? participantConnectionLimit(openFileLimit()) ?? 0;
  useListenerCap(app, 'participant', maxConnections, deps.exhausted);
  // Sockets that never present a certificate: per address from the accept, a deadline for the first byte, and the reserve.
  const handshakes = useHandshakeGuard(
    app,
    { max: maxConnections, perAddress: limits.maxConnectionsPerAddress, firstByteMs: limits.firstByteTimeoutMs, reservePercent: limits.authenticatedReservePercent },
    (why) => deps.exhausted?.refused('participant', why),
  );
  deps.metrics?.watchHandshakes('participant', handshakes);

  // What Node's parser lets through but the DIP cannot serve: another major HTTP version in HTTP/1
  // framing (the published API lists 505), or no Host, which the signed URL is rebuilt from.
  // An Accept that excludes JSON on an operation that only answers JSON is 406, as published.
  // A Host that is none of the listener's names is refused before authentication reads anything: with
  // publicUrl unset the URL a signature is checked against, and the URLs in answers, are built from it.
  // Names only (any port passes): a TCP balancer or port forward reaches the listener on another port, and a
  // certificate, which is what a client checks the name against, names no port.
  app.addHook('onRequest', (req, reply, done) => {
    const versionRefused = versionRefusal(req.headers[API_VERSION_HEADER]);
    if (req.raw.httpVersionMajor !== 1) void sendStandard(deps, reply, 505, null, MSG.schemaFailure, `HTTP/${req.raw.httpVersion} is not supported: send HTTP/1.1`);
    else if (!req.headers.host && req.raw.httpVersionMinor >= 1) void sendStandard(deps, reply, 400, null, MSG.schemaFailure, 'the Host header is required (HTTP/1.1): the signed URL is rebuilt from it');
    else if (!hostKnown(requestAuthority(req.raw), hostNames)) {
      // An absolute-form target's authority, not Host, is the name asked for (requestAuthority).
      const authority = String(requestAuthority(req.raw));
      const named = req.headers.host === authority ? `the Host '${authority.slice(0, 100)}'` : `the request target's host '${authority.slice(0, 100)}'`;
      // The names are not listed: allowedHosts may name internal hosts.
      const name = hostHeaderName(authority);
      // Said of any loopback name, listed or not: which names the operator configured stays unsaid.
      const loopback = name !== null && isLoopback(name) ? ' (a loopback name is one only on a listener bound to a loopback address, or listed in allowedHosts)' : '';
      const help = `${named} is not a name of this DIP's participant API: call it by a name its server certificate covers (or publicUrl's, or one in allowedHosts)${loopback}`;
      void sendStandard(deps, reply, 421, null, MSG.processingFailed, help);
    }
    else if (versionRefused !== null) void sendStandard(deps, reply, 400, null, MSG.schemaFailure, versionRefused);
    else if (excludesJson(req.headers.accept) && answersJsonOnly(req.routeOptions.url)) {
      void sendStandard(deps, reply, 406, null, MSG.processingFailed, `Accept '${String(req.headers.accept).slice(0, 100)}' excludes application/json, the only type this operation answers in`);
    } else done();
  });
  // The DIP's own overload first: the cheapest answer, before the body is read.
  if (deps.overload) useOverloadGuard(app, deps, deps.overload);
  // Fair use, before the body is read or anything expensive runs.
  const limiter = security.rateLimits ?? new RateLimiter(deps.config.rateLimit);
  if (limiter.enabled) {
    app.addHook('onRequest', async (req, reply) => {
      const apiKey = req.headers['x-api-key'];
      const keyOf = typeof apiKey === 'string' ? deps.registry.byApiKey(apiKey) : undefined;
      // An unknown key, or another participant's (its certificate names someone else: authentication will
      // refuse it), counts against the TLS client certificate that brought it: sending a participant's
      // key, which is no secret from its partners' logs, must not spend that participant's allowance.
      const peer = tlsPeer(req.raw.socket);
      const participant = keyOf && (!peer || peer.ids.includes(keyOf.dipId)) ? keyOf : undefined;
      const key = participant ? `p:${participant.dipId}` : peer ? `c:${peer.peer?.fingerprint256 ?? ''}` : `a:${req.raw.socket.remoteAddress ?? ''}`;
      const decision = await limiter.take(key, deps.clock.now());
      if (decision.ok) return;
      const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      reply.header('retry-after', String(seconds));
      const { requestsPerSecond, burst } = deps.config.rateLimit;
      return sendStandard(
        deps,
        reply,
        429,
        participant?.dipId ?? null,
        MSG.processingFailed,
        `too many requests: the limit is ${requestsPerSecond} requests/s per participant (bursts of ${burst}); retry after ${seconds} s`,
      );
    });
  }

  // The signature covers the exact bytes received, so bodies stay raw; the pipeline parses them once.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json'], { parseAs: 'buffer' }, (req, body, done) => {
    const buf = body as Buffer;
    const encoded = unacceptedContentEncoding(req, 'send the body uncompressed (the signature covers its bytes as sent)') ?? unacceptedCharset(req) ?? byteOrderMark(buf);
    if (encoded !== null) {
      done(Object.assign(new Error(encoded), { statusCode: 400 }), undefined);
      return;
    }
    // Decoding would replace a bad byte with U+FFFD: a payload changed after its sender signed it.
    if (!isUtf8(buf)) {
      done(Object.assign(new Error('the body is not UTF-8 text (JSON is exchanged in UTF-8, RFC 8259 8.1): a byte sequence in it is not valid UTF-8'), { statusCode: 400 }), undefined);
      return;
    }
    // Refused before anything parses it (src/security/json-depth.ts): too deep, or so many members that
    // the parse and the checks after it would hold the main thread. A route whose pipeline scans the body
    // itself (on an ingest thread) is not scanned twice.
    const route = req.routeOptions.config;
    const excess =
      route.jsonDepthCheckedByPipeline === true ? null : route.jsonValuesPerItem === true ? scanJsonBatch(buf, limits.maxJsonDepth, jsonCounts).excess : jsonBodyExcess(buf, limits.maxJsonDepth, jsonCounts);
    if (excess !== null) {
      done(Object.assign(new Error(excess), { statusCode: 400 }), undefined);
      return;
    }
    done(null, buf);
  });
  // A DELETE takes no body (docs/api-differences.md: bodies on GET and DELETE are ignored): whatever it is
  // labelled, it is read only as the bytes the signature's content hash covers. A client that labels an
  // empty body text/plain (.NET's StringContent(""), many HTTP libraries) or labels nothing was refused 400.
  // Every other route takes JSON alone.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    if (req.method === 'DELETE') done(null, body);
    else done(Object.assign(new Error(unacceptedMediaType(req)), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' }), undefined);
  });

  app.setErrorHandler(async (error: Error & { statusCode?: number; code?: string; validation?: ErrorObject[] }, req, reply) => {
    const caller = req.admitted?.caller.dipId ?? null;
    // Fastify refuses a body over the limit unread (or part read) and closes the connection after the 413:
    // the rest is read and dropped first, or the close resets the connection and a sender that writes its
    // whole body before reading (no Expect: 100-continue) loses the 413 (test hostile/bodies). Read for as
    // long as bytes keep coming (a 10 MB body on a slow link takes more than a fixed 2 s), within the
    // whole-request deadline; a sender that stops sending is answered after the idle pause.
    // A sender still waiting for 100 Continue sends no body: answered at once. Bounded in bytes too (four
    // times the limit): a sender declaring gigabytes is not read for two minutes at line rate; it is closed.
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' && (!expectsContinue.has(req.raw) || sending.has(req.raw))) {
      const maxBytes = 4 * req.routeOptions.bodyLimit;
      if (!(Number(req.headers['content-length']) > maxBytes)) await drained(req.raw, { maxMs: limits.requestTimeoutMs, maxBytes });
    }
    // The route's body schema (the published one) refused the body: each field named, and why.
    if (error.validation) return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, describeBodyErrors(error.validation));
    // The store cannot be reached (a database restarting, failing over): the caller's to try again, not a fault.
    if (storeFailureKind(error) === 'unavailable') {
      // "Send it again unchanged": the same signature must then be taken, not refused as a replay.
      const signature = req.headers[DIP_HEADER_SIGNATURE];
      // Released as authentication recorded it: the canonical spelling of its bytes.
      if (typeof signature === 'string') void Promise.resolve(security.replay?.release(canonicalSignature(signature))).catch((err: unknown) => deps.logger.warn({ err }, 'a signature could not be released'));
      reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS));
      return sendStandard(deps, reply, 503, caller, MSG.processingFailed, `the DIP cannot reach its store right now (${error.code ?? 'storage unavailable'}): send the request again unchanged after the Retry-After interval`);
    }
    // A Content-Type other than JSON is 400 here: the published API lists no 415 for its operations.
    const status = error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 400 : error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    let help = error.message;
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') help = `the body is larger than the limit of ${req.routeOptions.bodyLimit} bytes`;
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') help = unacceptedMediaType(req);
    if (status >= 500) deps.logger.error({ err: error, url: loggedUrl(req.url) }, 'request failed');
    return sendStandard(deps, reply, status, caller, status >= 500 ? MSG.processingFailed : MSG.schemaFailure, status >= 500 ? 'internal error' : help);
  });
  app.setNotFoundHandler((req, reply) => {
    // Not a channel's path (an unknown channel on a channel's path is MSG1002, src/pipeline/access.ts): the generic code.
    void sendStandard(deps, reply, 404, null, MSG.processingFailed, `no such resource: ${req.method} ${req.url.split('?')[0]}`);
  });

  const routes = new Map<string, Set<string>>();
  const notAllowed = new NotAllowedRoutes();
  app.addHook('onRoute', (r) => {
    // A guarded operation's body (configuration, filters, a CSR) is parsed on the main thread: held to the
    // small limit, unless the route sets its own (a batch of status messages is as large as messages are).
    if (r.config?.access !== undefined && r.bodyLimit === undefined) r.bodyLimit = deps.config.controlBodyLimitBytes;
    const methods = routes.get(r.url) ?? new Set<string>();
    for (const m of [r.method].flat()) methods.add(m);
    routes.set(r.url, methods);
  });
  documentHostAnswer(app);
  registerGuard(app, deps);
  // Plugins load in order: the OpenAPI document first, so it sees every route registered after it.
  void app.register(registerParticipantDocs, { deps });
  const options = { deps };
  void app.register(healthRoutes, options);
  void app.register(channelRoutes, options);
  void app.register(pubconfigRoutes, options);
  void app.register(replayRoutes, options);
  void app.register(pullRoutes, options);
  void app.register(statusRoutes, options);
  void app.register(certificateRoutes, options);
  void app.register(maintenanceRoutes, options);
  void app.register(validateRoutes, options);
  void app.register(dataPortalRoutes, options);
  void app.register(asyncApiRoutes, options);
  void app.register(async (instance) => registerPublicationRoutes(instance, deps));
  const alarms = deps.alarms;
  if (alarms) void app.register(async (instance) => registerAlarmRoutes(instance, deps, alarms));
  const self = deps.selfService;
  if (self) void app.register(async (instance) => registerParticipantRoutes(instance, deps, self));
  const reports = deps.reports;
  if (reports) {
    void app.register(async (instance) =>
      registerReportRoutes(instance, reports, {
        prefix: '/observability/reports',
        config: { access: 'participant' },
        answers: (ok, refusals) => answers([...GUARDED, ...refusals], ok),
        viewer: (req) => ({ kind: 'participant', dipId: admitted(req).caller.dipId }),
        fail: (reply, req, status, help) => sendStandard(deps, reply, status, req.admitted?.caller.dipId ?? null, status === 403 ? MSG.processingFailed : MSG.schemaFailure, help),
        now: () => deps.clock.now(),
        names: reportNames((id) => deps.channel(id), deps.registry, deps.config.dipId),
        logger: deps.logger,
      }),
    );
  }
  const saved = deps.savedReports;
  if (reports && saved) {
    void app.register(async (instance) => registerSavedReportApi(instance, deps, { ...saved, reports, channelId: (id) => deps.channel(id)?.interfaceId, now: () => deps.clock.now() }));
  }
  // Every method HTTP defines that node parses (TRACE, QUERY, WebDAV's PROPFIND, LINK …) is routed, so that
  // on a known path it is answered 405 too, not 404 as if the path did not exist. CONNECT never reaches a route.
  for (const m of HTTP_METHODS) if (m !== 'CONNECT' && !app.supportedMethods.includes(m)) app.addHttpMethod(m);
  // Last, once every route above is known.
  void app.register(async (instance) => notAllowed.register(instance, deps, routes));
  return app;
}

/** What a published path takes: its Allow, and the path as the published API spells it. */
interface PathMethods {
  allow: string;
  published: string;
}

/**
 * A method a known path does not take is answered 405 with the methods it does take in Allow (the
 * published answer), rather than 404 as if the path did not exist. Answered as the request arrives,
 * before its body is looked at: a QUERY without a Content-Type was refused 400 for that by Fastify's body
 * handling, on a path that takes no QUERY at all.
 */
class NotAllowedRoutes {
  /**
   * Each path's pattern, for on(): a CONNECT never reaches a route, and Fastify's findRoute tells a route
   * found, not which (every route has the same internal handler).
   */
  private readonly paths: Array<{ pattern: RegExp; params: number; methods: PathMethods }> = [];

  register(app: FastifyInstance, deps: ApiDeps, routes: ReadonlyMap<string, ReadonlySet<string>>): void {
    for (const [url, taken] of [...routes]) {
      const others = app.supportedMethods.filter((m) => m !== 'CONNECT' && !taken.has(m));
      if (others.length === 0) continue;
      const methods: PathMethods = { allow: [...taken].sort().join(', '), published: url.replace(':recipientId', '{recipient-id}').replace(/:(\w+)/g, '{$1}') };
      const refuse = async (req: FastifyRequest, reply: FastifyReply) => {
        reply.header('allow', methods.allow);
        return sendStandard(deps, reply, 405, null, MSG.processingFailed, `${req.method} is not allowed on ${methods.published}; allowed: ${methods.allow}`);
      };
      // Refused in onRequest, before the body; Fastify requires a handler, and the same answer is it.
      app.route({ method: others, url, schema: { hide: true }, onRequest: refuse, handler: refuse });
      const segments = url.split('/');
      // As the router matches (routerOptions): any case, a trailing slash or none.
      const source = segments.map((s) => (s.startsWith(':') ? '[^/]+' : s === '*' ? '.*' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/');
      // eslint-disable-next-line security/detect-non-literal-regexp -- built from the listener's own route paths, escaped
      this.paths.push({ pattern: new RegExp(`^${source}/?$`, 'i'), params: segments.filter((s) => s.startsWith(':') || s === '*').length, methods });
    }
  }

  /** The methods the published path `path` (a request's, as received) takes, the most specific match (static before parametric); undefined when none matches. */
  on(path: string): PathMethods | undefined {
    let best: (typeof this.paths)[number] | undefined;
    for (const p of this.paths) if (p.pattern.test(path) && (best === undefined || p.params < best.params)) best = p;
    return best?.methods;
  }
}

/** The published operations (and pull/ack beside them), which answer only in JSON; publications and documents answer in others. */
function answersJsonOnly(route: string | undefined): boolean {
  if (route === undefined) return false;
  return route.startsWith('/statusmessage') || route.startsWith('/validate/') || (route.startsWith('/dip-channel/') && !route.includes('/publications'));
}

/** The Accept values clients send most, answered without parsing (axios, fetch, curl, most SDKs). */
const TAKES_JSON = new Set(['*/*', 'application/json', 'application/json, text/plain, */*', 'application/json; charset=utf-8']);

/**
 * Whether an Accept header leaves out JSON (absent or empty: anything goes). Parameters other than q
 * are dropped first: negotiator matches `application/json; charset=utf-8` (or `;version=2`) only to an
 * offer with the same parameters, and JSON in any of them is what the DIP answers.
 */
function excludesJson(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === '' || TAKES_JSON.has(accept)) return false;
  const ranges = accept
    .split(',')
    .map((range) => {
      const [type, ...params] = range.split(';');
      const q = params.find((p) => /^\s*q\s*=/i.test(p));
      return q === undefined ? type : `${type};${q}`;
    })
    .join(',');
  return new Negotiator({ headers: { accept: ranges } }).mediaType(['application/json']) === undefined;
}

/**
 * Whether a path Fastify could not route fails in its channel segment (`/dip-channel/{id}`: too long to be
 * an interface ID, or malformed percent-encoding): that is MSG1002 Interface ID Invalid; anywhere else the
 * path names no resource, the generic MSG1000.
 */
function badChannelSegment(path: string): boolean {
  const [, first, channel] = path.split('/');
  if (first?.toLowerCase() !== 'dip-channel' || channel === undefined) return false;
  if (channel.length > MAX_PARAM_LENGTH) return true;
  try {
    decodeURIComponent(channel);
    return false;
  } catch {
    return true;
  }
}

/**
 * The body a route is given instead of one its sender was not told to send: empty, and counted as the
 * `Content-Length` announced, which Fastify's body reader otherwise compares with the bytes read (a 400).
 * Should the route admit the caller after all (its key registered a moment later), the signature's
 * content hash of the body announced does not match the empty one: refused 401, nothing acted on.
 */
function unreadBody(contentLength: string | undefined): Readable {
  return Object.assign(Readable.from([]), { receivedEncodedLength: Number(contentLength ?? 0) });
}
