import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { MSG, type MsgText } from '../domain/response-codes.js';
import { standardResponse } from '../domain/standard-response.js';
import { DIP_URN_PREFIX } from '../security/signature.js';
import type { CallerEvidence } from '../pipeline/authenticate.js';
import { registerChannelRoutes } from './routes/channel.js';
import { registerPubconfigRoutes } from './routes/pubconfig.js';
import { registerPullRoutes } from './routes/pull.js';
import { registerReplayRoutes } from './routes/replay.js';
import { registerStatusRoutes } from './routes/status.js';
import type { ApiDeps } from './deps.js';

/** Longest path segment (channel ID, DIP ID) the router accepts. */
const MAX_PARAM_LENGTH = 200;

export interface TlsMaterial {
  key: string;
  cert: string;
  /** CAs a participant's client certificate must chain to. */
  ca: string[];
}

/**
 * The participant-facing HTTPS listener: mutual TLS (a client certificate from the environment's CA is
 * required at the handshake), routes as published in DIP API 2.1.0, and every answer in the
 * StandardResponse shape, errors included.
 */
export function buildServer(deps: ApiDeps, tls: TlsMaterial): FastifyInstance {
  const app = Fastify({
    https: { key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
    bodyLimit: deps.config.bodyLimitBytes,
    routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    keepAliveTimeout: 75_000,
    logger: false,
    // Errors Fastify raises while routing, before any handler runs (a path segment longer than
    // maxParamLength, a malformed percent-encoding), would otherwise be answered in Fastify's own
    // {error, code, message} shape instead of a StandardResponse.
    frameworkErrors: (error, req, reply) => {
      const path = (req.raw.url ?? '').split('?')[0] ?? '';
      const shown = path.length > 80 ? `${path.slice(0, 80)}…` : path;
      if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
        // No channel or DIP ID is that long: the same answer as for any other unknown resource.
        void sendStandard(deps, reply, 404, null, MSG.interfaceIdInvalid, `no such resource: ${req.raw.method ?? ''} ${shown} (a path segment is longer than ${MAX_PARAM_LENGTH} characters)`);
      } else if (error.code === 'FST_ERR_BAD_URL') {
        void sendStandard(deps, reply, 400, null, MSG.interfaceIdInvalid, `the path ${shown} is not a valid URL (malformed percent-encoding)`);
      } else {
        deps.logger.error({ err: error, url: path }, 'request failed while routing');
        void sendStandard(deps, reply, 500, null, MSG.processingFailed, 'internal error');
      }
    },
  });

  // The signature covers the exact bytes received, so bodies stay raw; the pipeline parses them once.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    let help = error.message;
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') help = `the body is larger than the limit of ${deps.config.bodyLimitBytes} bytes`;
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') help = `Content-Type '${req.headers['content-type'] ?? ''}' is not accepted: send application/json`;
    if (status >= 500) deps.logger.error({ err: error, url: req.url }, 'request failed');
    void sendStandard(deps, reply, status, null, status >= 500 ? MSG.processingFailed : MSG.schemaFailure, status >= 500 ? 'internal error' : help);
  });
  app.setNotFoundHandler((req, reply) => {
    void sendStandard(deps, reply, 404, null, MSG.interfaceIdInvalid, `no such resource: ${req.method} ${req.url.split('?')[0]}`);
  });

  app.get('/health', async () => ({ status: 'ok' }));
  registerChannelRoutes(app, deps);
  registerPubconfigRoutes(app, deps);
  registerReplayRoutes(app, deps);
  registerPullRoutes(app, deps);
  registerStatusRoutes(app, deps);
  return app;
}

export function sendStandard(
  deps: ApiDeps,
  reply: FastifyReply,
  status: number,
  recipientId: string | null,
  message: MsgText,
  help: string | null,
): FastifyReply {
  return reply.code(status).send(standardResponse(new Date(), deps.config.dipId, recipientId, [{ message, help }]));
}

// The client certificate is read once per connection, not per request: parsing it per request halves
// throughput on kept-alive connections.
const peerIds = new WeakMap<Socket, readonly string[] | null>();

function tlsDipIds(socket: Socket): readonly string[] | null {
  const cached = peerIds.get(socket);
  if (cached !== undefined) return cached;
  const cert = (socket as TLSSocket).getPeerX509Certificate?.();
  let ids: string[] | null = null;
  if (cert) {
    ids = (cert.subjectAltName ?? '')
      .split(', ')
      .filter((n) => n.startsWith(`URI:${DIP_URN_PREFIX}`))
      .map((n) => n.slice(4 + DIP_URN_PREFIX.length));
  }
  peerIds.set(socket, ids);
  return ids;
}

/** Everything authentication needs from a request. */
export function evidence(deps: ApiDeps, req: FastifyRequest): CallerEvidence {
  const apiKey = req.headers['x-api-key'];
  const base = deps.config.publicUrl ?? `https://${req.headers.host ?? ''}`;
  return {
    apiKey: Array.isArray(apiKey) ? undefined : apiKey,
    tlsDipIds: tlsDipIds(req.raw.socket),
    method: req.method,
    url: `${base.replace(/\/$/, '')}${req.raw.url ?? ''}`,
    body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
    headers: req.headers,
  };
}
