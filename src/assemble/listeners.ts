import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildAdminServer, ensureAdminToken, type AdminDeps } from '../api/admin.js';
import { ACTING_OPERATOR_HEADER } from '../api/admin-operators.js';
import { inProcessTransport } from '../api/in-process.js';
import { registerActivityLog, useAddressRate } from '../api/activity.js';
import type { ActivitySink } from '../pipeline/activity-recorder.js';
import { operatorApi as operatorApiClient } from '../openapi-client/index.js';
import type { ApiDeps } from '../api/deps.js';
import { registerRequestMetrics } from '../api/metrics.js';
import { operationsOf, recordOperations, type Operation } from '../api/operations.js';
import { buildPublicServer } from '../api/public-server.js';
import { addressHolder, useConnectionCap } from '../api/connection-cap.js';
import { buildServer, type ServerSecurity } from '../api/server.js';
import { beginGracefulStop, useGracefulStop } from '../api/stopping.js';
import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import { buildPortalServer, overCapPage, overRatePage, stoppingPage, unrecordedPage } from '../portal/server.js';
import type { PortalDeps } from '../portal/deps.js';
import type { ListenerCertificate } from '../security/server-certificate.js';
import { SessionSigner } from '../security/portal-session.js';
import { DeviceCookies } from '../security/device-cookie.js';
import { OperatorSessions } from '../pipeline/operator-sessions.js';
import { OperatorMemory } from '../pipeline/operator-memory.js';
import type { Clock } from '../ports/clock.js';
import type { DipMetrics } from '../pipeline/metrics.js';
import type { ExternalCrlWatcher } from '../security/external-crl.js';
import type { RevocationWatcher } from '../security/revocation.js';
import type { TrustStore } from '../security/trust-store.js';
import { knownHostNames } from '../security/host-names.js';
import { nodeSecretFile } from '../security/node-secrets.js';

/**
 * Listens, registers the close, and answers the port bound (the configured one, or the one chosen for
 * port 0). Its graceful stop begins as the DIP's stop does, with every other listener's (one drain for all).
 */
async function listen(server: FastifyInstance, name: string, port: number, host: string, life: Lifecycle): Promise<number> {
  await server.listen({ port, host });
  life.started(name, () => server.close());
  life.onStopping(name, () => beginGracefulStop(server));
  const address = server.server.address();
  return typeof address === 'object' && address ? address.port : port;
}

/** The participants' mutual-TLS listener. */
export async function startParticipantListener(
  config: DipConfig,
  deps: ApiDeps,
  certificate: ListenerCertificate,
  trust: TrustStore,
  security: Pick<ServerSecurity, 'replay' | 'rateLimits'>,
  revocation: RevocationWatcher,
  externalCrls: ExternalCrlWatcher | null,
  life: Lifecycle,
): Promise<{ port: number; operations: readonly Operation[]; document: () => object }> {
  const revoked = (fingerprint256: string) => revocation.revoked(fingerprint256);
  const app = buildServer(
    deps,
    { certificate, ca: trust.cas },
    {
      ...security,
      // With a CRL installed OpenSSL wants one from every issuer in a client's chain: the built-in CA's
      // CRL with its own trust store, the external CAs' CRLs (each CA has one) with trustedCaFiles.
      revocation: trust.builtIn
        ? revocation
        : externalCrls
          ? {
              revoked,
              revokedBy: (issuer: string, serialNumber: string) => externalCrls.revokedBy(issuer, serialNumber),
              // Both only ever count up: the sum moves whenever either does.
              generation: () => revocation.generation() + externalCrls.generation(),
              crlPem: () => externalCrls.crlPems(),
              onCrl: (listener) => externalCrls.onCrl(listener),
            }
          : { revoked, generation: () => revocation.generation(), crlPem: () => undefined, onCrl: () => {} },
    },
  );
  const port = await listen(app, 'participant listener', config.port, config.host, life);
  return { port, operations: operationsOf(app), document: () => app.swagger() };
}

/** Public publications, without a client certificate, on a listener of their own (off by default: null). */
export async function startAnonymousListener(config: DipConfig, deps: ApiDeps, certificate: ListenerCertificate, life: Lifecycle): Promise<{ port: number; operations: readonly Operation[] } | null> {
  const settings = config.publications.anonymous;
  if (!settings.enabled) return null;
  const anonymous = buildPublicServer(deps, certificate, settings);
  const port = await listen(anonymous, 'anonymous listener', settings.port, settings.host, life);
  return { port, operations: operationsOf(anonymous) };
}

/** What the portals call the operator API with, in-process (never on a network). */
export type OperatorApi = PortalDeps['operatorApi'];

/** The operator listener's address: the loopback interface only. */
const OPERATOR_ADDRESS = '127.0.0.1';

/** The operator API on the loopback interface, and the in-process door the portals use to call it as the operator signed in. */
export async function startOperatorListener(
  config: DipConfig,
  deps: Omit<AdminDeps, 'token' | 'inProcessKey' | 'sessions' | 'memory' | 'bootstrapBreakGlass' | 'hostNames' | 'signatureSkewMs' | 'stopDrainMs' | 'answerDeadlines'>,
  metrics: Pick<DipMetrics, 'request'>,
  clock: Clock,
  life: Lifecycle,
): Promise<{ port: number; operations: readonly Operation[]; operatorApi: OperatorApi; document: () => object }> {
  const inProcessKey = randomBytes(32).toString('base64url');
  // Its own signing key: a portal cookie is not an API token, nor the other way round.
  const signer = SessionSigner.fromFile(nodeSecretFile(config.dataDir, 'operatorSession'));
  const sessions = new OperatorSessions({ operators: deps.operators, accounts: deps.portalAccounts, signer, journal: deps.journal, clock, sessionMs: config.operators.sessionMinutes * 60_000 });
  // So that the operator on call can read the alarms while the store is down (README "Operator accounts").
  const memory = new OperatorMemory({
    read: async () => ({ accounts: await deps.operators.accounts(), people: await deps.portalAccounts.accounts(null) }),
    clock,
    maxAgeMs: config.operators.rememberedMinutes * 60_000,
    logger: deps.logger,
  });
  memory.start();
  life.started('operator accounts memory', async () => memory.stop());
  const admin = buildAdminServer({
    ...deps,
    token: ensureAdminToken(config.dataDir),
    bootstrapBreakGlass: config.operators.bootstrapBreakGlass,
    hostNames: knownHostNames(OPERATOR_ADDRESS, config.operators.allowedHosts, 'operators.allowedHosts'),
    sessions,
    memory,
    inProcessKey,
    signatureSkewMs: config.maxClockSkewSeconds * 1000,
    stopDrainMs: config.http.stopDrainMs,
    answerDeadlines: { downloadIdleTimeoutMs: config.http.downloadIdleTimeoutMs, clock },
  });
  // Every answer counted, the portals' in-process calls and the scrapes of /metrics among them.
  registerRequestMetrics(admin, metrics, 'operator');
  const port = await listen(admin, 'operator listener', config.adminPort, OPERATOR_ADDRESS, life);
  const operatorApi: OperatorApi = (operator) => operatorApiClient(inProcessTransport(admin, { authorization: `Bearer ${inProcessKey}`, [ACTING_OPERATOR_HEADER]: operator }));
  return { port, operations: operationsOf(admin), operatorApi, document: () => admin.swagger() };
}

/** The user portal (/portal) and the operator portal (/operator). */
export async function startPortalListener(
  config: DipConfig,
  deps: Omit<PortalDeps, 'sessions' | 'devices' | 'recordActivity'>,
  activity: ActivitySink | null,
  metrics: Pick<DipMetrics, 'watchConnections' | 'request'> | null,
  certificate: ListenerCertificate,
  life: Lifecycle,
): Promise<{ port: number; operations: readonly Operation[] }> {
  // Pages are HTML with personal data that masking by key cannot read: the log keeps that they were answered.
  const recordActivity: PortalDeps['recordActivity'] = activity ? (app, callerOf) => registerActivityLog(app, activity, 'portal', callerOf, () => deps.clock.now(), false, unrecordedPage) : null;
  const portal = buildPortalServer({ ...deps, recordActivity, sessions: SessionSigner.fromFile(nodeSecretFile(config.dataDir, 'portalSession')), devices: DeviceCookies.fromFile(nodeSecretFile(config.dataDir, 'portalDevice')) }, certificate, recordOperations);
  // Stopping, a page (503, Retry-After) for every request, not Fastify's bare JSON: here, as the connection cap below.
  useGracefulStop(portal, config.http.stopDrainMs, stoppingPage);
  // One address's connections past its cap, as on the anonymous listener (anyone on the network reaches
  // this one too): every request on one is answered 429 with a portal page, before a form is read or a
  // session checked. Here, not in the portal's layer, which imports no api.
  const connections = useConnectionCap(portal, config.portal.maxConnectionsPerAddress, addressHolder, overCapPage);
  // One address's requests past its rate (config portal.rateLimit): 429 with a page, counted by the
  // activity log rather than kept one by one (README "API activity log").
  useAddressRate(portal, config.portal.rateLimit, () => deps.clock.now(), overRatePage);
  metrics?.watchConnections('portal', connections);
  if (metrics) registerRequestMetrics(portal, metrics, 'portal');
  return { port: await listen(portal, 'portal listener', config.portalPort, config.host, life), operations: operationsOf(portal) };
}
