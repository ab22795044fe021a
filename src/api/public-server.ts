import Fastify, { type FastifyInstance } from 'fastify';
import { MSG } from '../domain/response-codes.js';
import type { RateLimitSettings } from '../security/rate-limit.js';
import { clientDeadlines } from '../security/listener-deadlines.js';
import { withdrawnHelp } from '../pipeline/publications.js';
import type { ApiDeps } from './deps.js';
import { describePublication, listQuery, sendListing, sendPublication } from './publication-download.js';
import { unknownParameter, type RawQuery } from './query.js';
import { registerRequestMetrics } from './metrics.js';
import { recordOperations } from './operations.js';
import { registerActivityLog, useAddressRate } from './activity.js';
import { useAnswerDeadlines } from '../security/answer-deadlines.js';
import { sendStandard } from './request.js';
import { addressHolder, standardOverCap, useConnectionCap } from './connection-cap.js';
import { listenerContext, serveRenewedCertificate, type ListenerCertificate } from '../security/server-certificate.js';
import { standardStopping, useGracefulStop } from './stopping.js';
import { useApiSecurityHeaders } from './security-headers.js';
import { loggedUrl } from '../domain/activity.js';
import { publicMaintenanceRoutes } from './public-maintenance.js';

/**
 * The anonymous listener (spec 5.6: "anonymous access to the data store"): HTTPS without a client
 * certificate, GET only, public publications and the public maintenance page only, with fair-use limits of
 * its own per client address.
 * It never sees a participant's API or a restricted publication's bytes, nor learns that one exists (404,
 * as for an unknown ID).
 *   GET /publications                                 list (channel, type, version, from, to, effectiveOn, limit)
 *   GET /publications/{publication-id}                metadata
 *   GET /publications/{publication-id}/content        download (Range; where, columns, decompress)
 *   GET /maintenance, /maintenance.json, /maintenance.ics   maintenance windows (spec 5.13.5; public-maintenance.ts)
 */
export function buildPublicServer(
  deps: ApiDeps,
  tls: ListenerCertificate,
  limits: { rateLimit: RateLimitSettings; maxConnectionsPerAddress: number },
): FastifyInstance {
  const { rateLimit } = limits;
  // The participant listener's deadlines (config `http`), headers and their checking interval included:
  // anyone on the network reaches this listener.
  const deadlines = clientDeadlines(deps.config.http);
  const app = Fastify({
    https: { ...listenerContext(tls.inForce()), ...deadlines.https },
    requestTimeout: deadlines.requestTimeout,
    routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, maxParamLength: 100 },
    // A stopping listener answers in the DIP's own shape (useGracefulStop), not Fastify's bare 503.
    return503OnClosing: false,
    logger: false,
  });
  // A renewed server certificate is served from the next handshake.
  serveRenewedCertificate(app.server, tls, listenerContext, 'anonymous', deps.logger);
  // Security headers and the API version on every answer, refusals while stopping included.
  useApiSecurityHeaders(app, { noStore: false });
  // Every request is recorded (spec 5.8.1), the caller unknown: the client's address is the record's `remote`.
  if (deps.activity) registerActivityLog(app, deps.activity, 'anonymous', () => null, () => deps.clock.now(), true, standardStopping(deps));
  // Next (the request has its ID, its record is made): a stopping DIP refuses what still arrives before anything reads or counts it.
  useGracefulStop(app, deps.config.http.stopDrainMs, standardStopping(deps));
  recordOperations(app);
  if (deps.metrics) registerRequestMetrics(app, deps.metrics, 'anonymous');
  // A client that stops reading a download is cut off, as on the participant listener: here anyone may ask.
  useAnswerDeadlines(app, deps.config.http, deps.clock, (url, sent) => deps.logger.warn({ url: loggedUrl(url), sentBytes: sent, idleMs: deps.config.http.downloadIdleTimeoutMs }, 'anonymous download cut off: the client took no byte for the idle timeout'));
  // One address's connections past its cap: every request on one is answered 429 before anything else is judged.
  const connections = useConnectionCap(app, limits.maxConnectionsPerAddress, addressHolder, standardOverCap(deps));
  deps.metrics?.watchConnections('anonymous', connections);
  // Past its rate an address is answered 429, and the activity log counts those refusals rather than keeping each.
  useAddressRate(app, rateLimit, () => deps.clock.now(), (_req, reply, o) =>
    sendStandard(deps, reply, 429, null, MSG.processingFailed, `too many requests: the anonymous limit is ${rateLimit.requestsPerSecond} requests/s per address (bursts of ${rateLimit.burst}); retry after ${o.retryAfterSeconds} s`),
  );
  app.setNotFoundHandler((req, reply) => {
    void sendStandard(deps, reply, 404, null, MSG.processingFailed, `no such resource: ${req.method} ${req.url.split('?')[0]} (this listener serves GET /publications and GET /maintenance)`);
  });
  app.setErrorHandler((error: Error & { statusCode?: number }, req, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status >= 500) deps.logger.error({ err: error, url: loggedUrl(req.url) }, 'anonymous request failed');
    return sendStandard(deps, reply, status, null, status >= 500 ? MSG.processingFailed : MSG.schemaFailure, status >= 500 ? 'internal error' : error.message);
  });

  publicMaintenanceRoutes(app, deps);

  app.get<{ Querystring: RawQuery }>('/publications', async (req, reply) => {
    const query = listQuery(req.query, { publicOnly: true });
    if ('error' in query) return sendStandard(deps, reply, 400, null, MSG.schemaFailure, query.error);
    // As the participant listener says it: a misspelt channel is not a channel with nothing public on it.
    const channel = query.channel === undefined ? undefined : deps.channel(query.channel);
    if (query.channel !== undefined && !channel) {
      return sendStandard(deps, reply, 404, null, MSG.interfaceIdInvalid, `dip-channel '${query.channel}' is not a channel of this DIP`);
    }
    // The channel as the catalogue spells it (its ID is read in any case, as in a participant's URL).
    return sendListing(deps, req, reply, channel ? { ...query, channel: channel.interfaceId } : query, null, (p) => deps.publications.publicUrl(p) ?? '');
  });

  const publicRecord = async (id: string) => {
    const record = await deps.publications.get(id);
    // A restricted publication is answered as one that does not exist, word for word (RFC 9110 15.5.4):
    // a 403 told anyone who guessed or was passed an ID that a publication was behind it, and when.
    if (!record || !record.public) {
      return { status: 404 as const, help: `no public publication ${id}: a publication for its channel's participants only is downloaded over the participant listener (mutual TLS)` };
    }
    // A public one that was withdrawn was everyone's to read: everyone is told it is gone, and why.
    if (record.withdrawn) return { status: 410 as const, help: withdrawnHelp(record) };
    return record;
  };

  app.get<{ Params: { publicationId: string }; Querystring: RawQuery }>('/publications/:publicationId', async (req, reply) => {
    const found = await publicRecord(req.params.publicationId);
    if ('status' in found) return sendStandard(deps, reply, found.status, null, MSG.processingFailed, found.help);
    const unknown = unknownParameter(req.query, [], '');
    if (unknown) return sendStandard(deps, reply, 400, null, MSG.schemaFailure, unknown.error);
    return reply.code(200).send(describePublication(found, deps.publications.publicUrl(found) ?? ''));
  });

  app.get<{ Params: { publicationId: string }; Querystring: RawQuery }>('/publications/:publicationId/content', { config: { keepAnswer: false, streamedAnswer: true } }, async (req, reply) => {
    const found = await publicRecord(req.params.publicationId);
    if ('status' in found) return sendStandard(deps, reply, found.status, null, MSG.processingFailed, found.help);
    return sendPublication(deps, req, reply, found, null);
  });
  return app;
}
