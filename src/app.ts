import { EventEmitter } from 'node:events';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { pino, type DestinationStream } from 'pino';
import { openActivityLog, openAlarmSubscriptions, openBackend, openCoordination, openPublicationBlobs } from './adapters/backend.js';
import { SmtpAlarmChannel } from './adapters/mail/alarm-channel.js';
import { registerAdminAlarmRoutes } from './api/alarm-routes.js';
import { registerReportRoutes } from './api/report-routes.js';
import { Reports } from './pipeline/reports.js';
import { Alarms, type ConditionSource } from './pipeline/alarms.js';
import { certificateAlarms, deadLetterAlarms, queueDepthAlarms, storageAlarms, webhookFailingAlarms } from './pipeline/alarm-sources.js';
import type { AlarmSubscriptionStore } from './ports/alarms.js';
import type { FastifyInstance } from 'fastify';
import { ActivityRecorder } from './pipeline/activity-recorder.js';
import { countedLog, DipMetrics, queueDepths, timedJournal } from './pipeline/metrics.js';
import { registerMetricsRoute } from './api/metrics.js';
import { hostname } from 'node:os';
import { systemClock } from './adapters/clock.js';
import { EventLoopGauge } from './adapters/event-loop-gauge.js';
import { UndiciWebhookTransport } from './adapters/http/webhook-client.js';
import { buildAdminServer, ensureAdminToken } from './api/admin.js';
import { buildPublicServer } from './api/public-server.js';
import { buildServer } from './api/server.js';
import { operationsOf, type Operation } from './api/operations.js';
import { ACTING_OPERATOR_HEADER } from './api/admin-operators.js';
import { buildPortalServer } from './portal/server.js';
import type { DipConfig } from './config.js';
import { Lifecycle } from './lifecycle.js';
import { CatalogueSource } from './pipeline/catalogue-source.js';
import { ChannelDirectory } from './pipeline/channels.js';
import { ChannelSettings } from './pipeline/channel-settings.js';
import { queueRules } from './pipeline/queue-rules.js';
import { ParticipantLifecycle } from './pipeline/participant-lifecycle.js';
import { SelfService } from './pipeline/self-service.js';
import { registerRegisterRoutes } from './api/admin-register.js';
import { registerChannelAdminRoutes } from './api/admin-channels.js';
import { Delivery, type DeadLetterEvent } from './pipeline/delivery.js';
import { DEFAULT_SHARE, DeliveryShare } from './pipeline/delivery-share.js';
import { Ingest } from './pipeline/ingest.js';
import { OverloadGuard } from './pipeline/overload.js';
import { MpanDirectory } from './pipeline/mpan-directory.js';
import { Publications } from './pipeline/publications.js';
import { OperatorAccounts } from './pipeline/operators.js';
import { mpanFeed } from './pipeline/mpan-feed.js';
import { RecipientCopies } from './pipeline/recipient-copy.js';
import { PortalAccountService } from './pipeline/portal-accounts.js';
import { Registry } from './pipeline/registry.js';
import { webhookConfigDeps } from './pipeline/webhook-config.js';
import { Replay } from './pipeline/replay.js';
import { Retention } from './pipeline/retention.js';
import { returnToSender } from './pipeline/return-to-sender.js';
import { queuesOf, STATUS_CHANNEL, StatusMessages } from './pipeline/status.js';
import type { Backend, BackendHealth, Coordination } from './ports/backend.js';
import type { Clock } from './ports/clock.js';
import type { LoadGauge } from './ports/load.js';
import type { Logger } from './ports/logger.js';
import type { QueueRef } from './ports/message-log.js';
import { ensureEncryptionKey } from './security/dip-encryption-key.js';
import { expiringAll } from './security/expiry.js';
import { ensurePki, issueParticipantCertificate, readCertificateAuthority, type PkiMaterial } from './security/pki.js';
import { revokeCertificate, RevocationWatcher } from './security/revocation.js';
import { SessionSigner } from './security/portal-session.js';
import { SigningKeyWatcher } from './security/signing-key.js';
import { clientTrustStore } from './security/trust-store.js';
import { WebhookDestinations } from './security/webhook-destinations.js';
import type { LookupFunction } from 'node:net';

export interface RunningDip {
  url: string;
  port: number;
  /** The PKI as loaded at start (the signing pair may have rotated since: see `signing`). */
  pki: PkiMaterial;
  /** The DIP's signing key in force. */
  signing: SigningKeyWatcher;
  adminPort: number;
  /** The user portal (/portal) and the operator portal (/operator). */
  portalUrl: string;
  backend: Backend;
  /** Queue leases, replay guard and rate limits (shared with the other nodes in a cluster). */
  coordination: Coordination;
  delivery: Delivery;
  /** 'dead-letter' (DeadLetterEvent), 'queue-halted' ({ queue, error }), 'health' (BackendHealth): what alarms subscribe to. */
  events: EventEmitter;
  retention: Retention;
  /** Alarms (null when turned off). */
  alarms: Alarms | null;
  /** Prometheus metrics (GET /metrics on the operator listener). */
  metrics: DipMetrics;
  /** The API activity log's recorder (null when turned off). */
  activity: ActivityRecorder | null;
  /** Every operation each listener serves, as registered (the fuzzer of test/fuzz covers them all). */
  operations: { participant: readonly Operation[]; operator: readonly Operation[]; anonymous: readonly Operation[] };
  /** Pattern B publications. */
  publications: Publications;
  /** The anonymous listener's port (public publications); null when it is not enabled. */
  publicPort: number | null;
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  /** Name resolution for webhook destinations (dns.lookup by default). */
  lookup?: LookupFunction;
  /**
   * The store can no longer promise durability (a failed disk sync). `dip serve` exits so that its
   * supervisor restarts it and recovery runs; embedders decide for themselves. The DIP already answers
   * 503 and reports not ready by then.
   */
  onFatal?: (reason: string) => void;
  /** How far behind the process runs (the event loop's delay by default; tests inject their own). */
  load?: LoadGauge;
}

export const pkiDir = (config: DipConfig): string => join(config.dataDir, 'pki');

/**
 * Logs never carry payloads or MPANs, whatever a future log line passes in. stdout unless told (a test
 * captures every line to prove it).
 */
export function defaultLogger(destination?: DestinationStream, level: string = process.env.DIP_LOG_LEVEL ?? 'info'): Logger {
  const options = {
    level,
    redact: { paths: ['payload', '*.payload', 'mpan', '*.mpan', 'MPANCore', '*.MPANCore', 'outbound', '*.outbound', 'body', '*.body'], censor: '[masked]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * The composition root: the only place adapters meet the pipeline. It wires and starts the services in
 * order and stops them in reverse (also when start-up fails half way); the logic lives in src/pipeline.
 */
export async function startDip(config: DipConfig, logger: Logger = defaultLogger(), options: StartOptions = {}): Promise<RunningDip> {
  const clock = options.clock ?? systemClock;
  const life = new Lifecycle(logger);
  try {
    return await wire(config, logger, clock, options, life);
  } catch (err) {
    await life.stop();
    throw err;
  }
}

async function startActivityLog(config: DipConfig, clock: Clock, logger: Logger, life: Lifecycle): Promise<ActivityRecorder | null> {
  const settings = config.observability.activityLog;
  if (!settings.enabled) return null;
  const store = await openActivityLog(config);
  life.started('activity log store', () => store.close());
  const recorder = new ActivityRecorder(
    store,
    {
      label: hostname(),
      flushIntervalMs: settings.flushIntervalMs,
      maxBatch: 2_000,
      maxBodyBytes: settings.maxBodyBytes,
      maxPending: 200_000,
      retentionMs: settings.retentionDays * 86_400_000,
      purgeIntervalMs: config.purgeIntervalSeconds * 1000,
    },
    clock,
    logger,
  );
  await recorder.start();
  life.started('activity log', () => recorder.stop());
  return recorder;
}

async function startAlarms(config: DipConfig, clock: Clock, logger: Logger, life: Lifecycle, sources: ConditionSource[], destinations: WebhookDestinations): Promise<{ alarms: Alarms; subscriptions: AlarmSubscriptionStore } | null> {
  const settings = config.observability.alarms;
  if (!settings.enabled) return null;
  const subscriptions = await openAlarmSubscriptions(config);
  life.started('alarm subscriptions', () => subscriptions.close());
  const channel = new SmtpAlarmChannel(settings.smtp, destinations);
  life.started('alarm notices', () => channel.close());
  const alarms = new Alarms(sources, subscriptions, channel, { evaluateIntervalMs: settings.evaluateIntervalMs, maxNoticesPerHour: settings.maxNoticesPerHour }, clock, logger);
  alarms.start();
  life.started('alarms', () => alarms.stop());
  return { alarms, subscriptions };
}

async function wire(config: DipConfig, logger: Logger, clock: Clock, options: StartOptions, life: Lifecycle): Promise<RunningDip> {
  const pki = await ensurePki(pkiDir(config), { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
  // Client certificates must chain to the environment's CA, or to the configured trusted CAs (PRD). Read
  // first: a broken trustedCaFiles entry stops the start before anything is opened.
  const trust = clientTrustStore(config.trustedCaFiles, pki.ca.certPem);
  const { backend, sealer } = await openBackend(config, { clock });
  life.started('storage', () => backend.close());
  // Queue leases, replay guard, rate limits: shared through NATS in a cluster, in memory otherwise.
  // Stopped after delivery (registered before it), so every lease is released once its worker stopped.
  const coordination = await openCoordination(config, { clock, logger });
  life.started('coordination', () => coordination.close());
  const events = new EventEmitter();
  const metrics = new DipMetrics(() => queueDepths(backend.log, clock.now()));
  events.on('health', (h: BackendHealth) => metrics.health(h));
  events.on('dead-letter', (e: DeadLetterEvent) => metrics.deadLetter(e.queue.channel, e.reason));
  backend.onHealthChange((health: BackendHealth) => {
    events.emit('health', health);
    if (health.state === 'fatal') {
      logger.error({ reason: health.reason }, 'storage failed for good: refusing writes and reporting not ready');
      options.onFatal?.(health.reason);
    } else if (health.state === 'unavailable') logger.error({ reason: health.reason, code: health.code }, 'storage cannot take writes: ingest answers 503 and delivery pauses until it can');
    else logger.info({}, 'storage takes writes again');
  });

  const catalogue = new CatalogueSource(config.dataDir, logger);
  const defaultStaleMs = (config.staleAfterMinutes ?? config.retentionDays * 1440) * 60_000;
  const registry = new Registry(backend.registry, logger, () => clock.now());
  // Channel settings change while running (operator API): stored versions replace the file's overrides.
  const channelSettings: ChannelSettings = new ChannelSettings({
    registry,
    store: backend.registry,
    journal: backend.journal,
    clock,
    definition: (id) => catalogue.current().channel(id),
    definitions: () => catalogue.current().channels(),
    configured: config.channels,
    channel: (id) => channels.get(id),
    afterChange: (_id, state) => {
      if (state === 'active') void delivery.sweep().catch((err: unknown) => logger.error({ err }, 'sweep after a channel resumed failed'));
    },
  });
  const channels = new ChannelDirectory(() => catalogue.current(), () => channelSettings.overrides(), defaultStaleMs, config.applySuggestedSecurityCategories, {
    availability: (id) => channelSettings.availability(id),
    subscribers: (id) => registry.subscribers(id),
  });
  registry.onChange(() => channels.invalidate());
  for (const [id, o] of Object.entries(config.channels)) {
    if (o.securityPattern === 0) logger.info({ channel: id }, 'securityPattern 0 ("no security action") runs as pattern 1: in API 2.1.0 every request and webhook call is signed');
  }
  const channel = (id: string) => channels.get(id);
  const mpan = new MpanDirectory(backend.mpan);
  // A bulk load or correction from the CLI changes the registry version too: drop what the cache holds.
  registry.onChange(() => mpan.invalidate());
  const status = new StatusMessages(backend.log, backend.archive, config.dipId, clock);
  // Security patterns 2 and 3: the DIP's encryption key (inbound); recipients' keys come from their certificates.
  const encryption = await ensureEncryptionKey(pkiDir(config), pki.ca);
  const copies = new RecipientCopies((id) => (id === STATUS_CHANNEL ? undefined : channel(id)), registry);
  await registry.start();
  life.started('registry', () => registry.stop());
  catalogue.start(2000);
  life.started('catalogue', () => catalogue.stop());
  if (config.warmCatalogue) catalogue.warm();

  // The signing key in force: `dip pki rotate-signing` replaces it while the DIP runs.
  const signing = new SigningKeyWatcher(pkiDir(config), pki.ca, pki.signing, logger);
  signing.start(config.signingKeyPollMs);
  life.started('signing key watcher', () => signing.stop());
  // Outside DEV no webhook may point the DIP at internal networks, checked at registration and per connection.
  const destinations = new WebhookDestinations({ enforce: config.environment !== 'DEV', allowList: config.webhookAllowList, lookup: options.lookup });
  const transport = new UndiciWebhookTransport({
    destinations,
    // Recipients may use commercial certificates or the environment's own CA; the DIP's server
    // certificate doubles as its client certificate for recipients that ask for mutual TLS.
    ca: [...rootCertificates, pki.ca.certPem],
    cert: pki.server.certPem,
    key: pki.server.keyPem,
  });
  life.started('webhook transport', () => transport.close());
  // Measured load: delivery's fair share slows catch-up while the event loop runs late.
  let load = options.load;
  if (!load) {
    const gauge = new EventLoopGauge();
    gauge.start();
    life.started('load gauge', () => gauge.stop());
    load = gauge;
  }
  const share = new DeliveryShare(
    { ...DEFAULT_SHARE, catchUpAfterMs: config.delivery.catchUpAfterMs, catchUpPerSecond: config.delivery.catchUpPerSecond },
    clock,
    load,
  );
  const delivery: Delivery = new Delivery({
    share,
    backend,
    log: backend.log,
    archive: timedJournal(backend.archive, metrics),
    webhook: (q: QueueRef) => registry.webhook(q.recipientDipId, q.channel),
    ...queueRules(registry, channel),
    onRegistryChange: (l) => registry.onChange(l),
    leases: coordination.leases,
    transport,
    signer: { sign: async (method, url, body) => ({ ...(await signing.current().sign(method, url, body)) }) },
    settings: {
      timeoutMs: config.delivery.timeoutMs,
      retry: { baseMs: config.delivery.retryBaseMs, capMs: config.delivery.retryCapMs },
      sweepIntervalMs: config.sweepIntervalSeconds * 1000,
    },
    clock,
    random: Math.random,
    logger,
    staleAfterMs: (id) => (id === STATUS_CHANNEL ? config.retentionDays * 86_400_000 : (channel(id)?.staleAfterMs ?? defaultStaleMs)),
    copyFor: (queue, outbound) => copies.copyFor(queue, outbound),
    localConsumer: mpanFeed(mpan),
    notices: returnToSender(status),
    deadLettered: (deadLetters: DeadLetterEvent[], notices) => {
      for (const e of deadLetters) events.emit('dead-letter', e);
      if (notices) delivery.notify(queuesOf(notices));
    },
    storeUnavailable: () => {},
    halted: (queue, error) => {
      logger.error({ queue, err: error }, 'queue halted by a permanent storage error: repair, then resume it (POST /admin/queues/resume)');
      events.emit('queue-halted', { queue, error });
    },
  });
  const ingest = new Ingest(
    {
      dipId: config.dipId,
      environment: config.environment,
      maxClockSkewMs: config.maxClockSkewSeconds * 1000,
      maxBatchMessages: config.maxBatchMessages,
    },
    { validate: (id, item, opts) => catalogue.current().validate(id, item, opts) },
    channel,
    registry,
    countedLog(backend.log, metrics),
    mpan,
    { dipKey: createPrivateKey(encryption.keyPem), recipientKey: (id) => copies.recipientKey(id) },
    () => new Date(clock.now()),
  );
  const replay = new Replay(backend.log, backend.archive, copies, clock, backend.requeueJobs, (q) => delivery.notify([q]), logger);
  const revocation = await RevocationWatcher.open(pkiDir(config), pki.ca, logger);
  revocation.start(config.revocationPollMs);
  life.started('revocation watcher', () => revocation.stop());
  if (!trust.builtIn) {
    logger.info(
      { trustedCaFiles: config.trustedCaFiles, cas: trust.cas.length },
      'client certificates are verified against trustedCaFiles; revoked certificates are refused per request (the CRL of the built-in CA is not installed in the listener)',
    );
  }
  const health = () => backend.health();
  // The central register feed, offboarding and self-service (README "Participants without outage").
  const lifecycle = new ParticipantLifecycle({
    registry,
    store: backend.registry,
    journal: backend.journal,
    clock,
    logger,
    revoke: async (pem, reason) => {
      try {
        await revokeCertificate(pkiDir(config), pem, reason);
        return true;
      } catch (err) {
        logger.warn({ err }, 'an offboarded participant\'s certificate could not be revoked here (not from this environment\'s CA): it is refused per request');
        return false;
      }
    },
    afterChange: () => void delivery.sweep().catch((err: unknown) => logger.error({ err }, 'sweep after a registration change failed')),
  });
  const selfService = new SelfService({
    registry,
    lifecycle,
    store: backend.registry,
    journal: backend.journal,
    now: () => clock.now(),
    optionalRoles: () => lifecycle.optionalRoles(),
    optInChannels: () => channelSettings.list().filter((c) => c.optIn && c.state !== 'withdrawn').map((c) => c.channel),
    issueCertificate: async (csrPem, dipId, organisation) =>
      (await issueParticipantCertificate(await readCertificateAuthority(pkiDir(config)), { organisation, dipIds: [dipId], environment: config.environment, validDays: 365, csrPem })).certPem,
    trustedCaPems: () => trust.cas,
  });
  // The API activity log: opened and started before the listeners, stopped after them (every answered
  // request is written before the store closes).
  const activity = await startActivityLog(config, clock, logger, life);
  // Pattern B: publication bytes in files (embedded) or a JetStream Object Store (cluster), sealed like the
  // archive; their metadata in the backend's database. Download URLs are known once the listeners are.
  const blobs = await openPublicationBlobs(config, sealer);
  life.started('publication store', () => blobs.close());
  const baseUrls: { participant: string; public: string | null } = { participant: '', public: null };
  const pubSettings = config.publications;
  const publications = new Publications(
    backend.publications,
    blobs,
    backend.log,
    registry,
    {
      maxBytes: (id) => pubSettings.channels[id]?.maxBytes ?? pubSettings.maxBytes,
      retentionMs: (id) => (pubSettings.channels[id]?.retentionDays ?? pubSettings.retentionDays) * 86_400_000,
      publisherRoles: (id) => pubSettings.channels[id]?.publisherRoles,
      participantBaseUrl: () => baseUrls.participant,
      publicBaseUrl: () => baseUrls.public,
      environment: config.environment,
      reachable: (ch, id) => ch.securityPattern !== 2 || copies.recipientKey(id) !== undefined,
    },
    clock,
    logger,
  );
  const alarms = await startAlarms(config, clock, logger, life, [
    deadLetterAlarms(backend.deadLetters, clock),
    queueDepthAlarms(() => queueDepths(backend.log, clock.now()), config.observability.alarms.queueDepthThreshold, clock),
    webhookFailingAlarms(() => delivery.status(), config.observability.alarms.webhookFailingMinutes * 60_000, clock),
    certificateAlarms(() => expiringAll(pkiDir(config), config.trustedCaFiles, registry.participants(), config.observability.alarms.certificateDays), clock),
    storageAlarms(health, clock),
  ], destinations);
  const alarmApi = alarms ? { alarms: alarms.alarms, subscriptions: alarms.subscriptions, checkUrl: (url: string) => destinations.checkUrl(url), now: () => clock.now() } : null;
  const reports = new Reports(backend.traces, mpan, () => clock.now());
  const apiDeps = {
    config, logger, ingest, registry, selfService, webhooks: backend.registry, delivery, replay, status, queues: backend.log, copies, channel, health, clock, destinations, publications,
    overload: new OverloadGuard(config.overload, load),
    // A getter: after a rotation GET /certificates/dip serves the signing certificate in force.
    certificates: { ca: pki.ca.certPem, get signing() { return signing.certificatePem(); }, encryption: encryption.certPem },
    ...(activity ? { activity } : {}),
    ...(alarmApi ? { alarms: alarmApi } : {}),
    reports,
    metrics,
  };
  const app = buildServer(
    apiDeps,
    { key: pki.server.keyPem, cert: pki.server.certPem, ca: trust.cas },
    {
      replay: coordination.replayGuard,
      rateLimits: coordination.rateLimits,
      // With a CRL installed OpenSSL wants one from every issuer in a client's chain: only the built-in
      // CA's own trust store can take it (the CRL is signed by that CA).
      revocation: trust.builtIn ? revocation : { revoked: (fingerprint256: string) => revocation.revoked(fingerprint256), crlPem: () => undefined, onCrl: () => {} },
    },
  );
  await app.listen({ port: config.port, host: config.host });
  life.started('participant listener', () => app.close());
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.hostnames[0] ?? 'localhost';
  baseUrls.participant = config.publicUrl?.replace(/\/$/, '') ?? `https://${host}:${port}`;
  // Public publications, without a client certificate, on a listener of their own (off by default).
  let publicPort: number | null = null;
  let anonymousOperations: readonly Operation[] = [];
  if (pubSettings.anonymous.enabled) {
    const anonymous = buildPublicServer(apiDeps, { key: pki.server.keyPem, cert: pki.server.certPem }, pubSettings.anonymous.rateLimit);
    await anonymous.listen({ port: pubSettings.anonymous.port, host: pubSettings.anonymous.host });
    life.started('anonymous listener', () => anonymous.close());
    anonymousOperations = operationsOf(anonymous);
    const a = anonymous.server.address();
    publicPort = typeof a === 'object' && a ? a.port : pubSettings.anonymous.port;
    baseUrls.public = `https://${host}:${publicPort}`;
  }
  const portalAccounts = new PortalAccountService(backend.portalAccounts, sealer, clock, `OpenDIP ${config.environment}`, (id) => registry.participant(id) !== undefined);
  const adminToken = ensureAdminToken(config.dataDir);
  // The portals' in-process calls to the operator API, as the operator signed in (never on a network).
  const inProcessKey = randomBytes(32).toString('base64url');
  const admin = buildAdminServer({
    operators: new OperatorAccounts(backend.registry, backend.journal, clock),
    journal: backend.journal,
    now: () => clock.now(),
    token: adminToken,
    portalAccounts,
    inProcessKey,
    deadLetters: backend.deadLetters,
    archive: backend.archive,
    mpan,
    delivery,
    logger,
    sealer,
    health,
    pki: { config, pkiDir: pkiDir(config), participants: () => registry.participants() },
    ...(activity ? { activity } : {}),
    routes: [
      (a) => registerReportRoutes(a, reports, { prefix: '/admin/reports', viewer: () => ({ kind: 'operator' }), fail: (reply, _req, status, error) => reply.code(status).send({ error }), now: () => clock.now() }),
      (a) => registerMetricsRoute(a, metrics), (a) => registerChannelAdminRoutes(a, channelSettings), (a) => registerRegisterRoutes(a, lifecycle), ...(alarmApi ? [(a: FastifyInstance) => registerAdminAlarmRoutes(a, alarmApi)] : [])],
  });
  await admin.listen({ port: config.adminPort, host: '127.0.0.1' });
  life.started('operator listener', () => admin.close());
  const adminAddress = admin.server.address();
  const adminPort = typeof adminAddress === 'object' && adminAddress ? adminAddress.port : config.adminPort;
  const portal = buildPortalServer(
    {
      config,
      logger,
      clock,
      accounts: portalAccounts,
      sessions: SessionSigner.fromFile(join(config.dataDir, 'portal-session.key')),
      registry,
      channel,
      channels,
      webhooks: webhookConfigDeps(config, { registry, webhooks: backend.registry, delivery, destinations }),
      replay,
      archive: backend.archive,
      deadLetters: backend.deadLetters,
      log: backend.log,
      copies,
      delivery,
      certificates: { ca: pki.ca.certPem, get signing() { return signing.certificatePem(); }, encryption: encryption.certPem },
      operatorApi: async (operator, method, url, payload) => {
        const headers = { authorization: `Bearer ${inProcessKey}`, [ACTING_OPERATOR_HEADER]: operator };
        const answer = await admin.inject({ method, url, payload: payload as Record<string, unknown> | undefined, headers });
        return { statusCode: answer.statusCode, body: answer.body };
      },
      issueCertificate: async (csrPem, dipId, organisation) => {
        const ca = await readCertificateAuthority(pkiDir(config));
        return (await issueParticipantCertificate(ca, { organisation, dipIds: [dipId], environment: config.environment, validDays: 365, csrPem })).certPem;
      },
    },
    { key: pki.server.keyPem, cert: pki.server.certPem },
  );
  await portal.listen({ port: config.portalPort, host: config.host });
  life.started('portal listener', () => portal.close());
  const portalAddress = portal.server.address();
  const portalPort = typeof portalAddress === 'object' && portalAddress ? portalAddress.port : config.portalPort;
  // Stopped before the listeners and the store (registered after them): no call is left half made.
  await delivery.start();
  life.started('delivery', () => delivery.stop());
  lifecycle.start();
  registry.onChange(() => lifecycle.kick());
  life.started('register', () => lifecycle.stop());
  await replay.start();
  life.started('requeue jobs', () => replay.stop());
  const retention = new Retention(
    backend.archive,
    {
      archiveRetentionMs: (id) => (channelSettings.overrides()[id]?.archiveRetentionDays ?? config.archiveRetentionDays) * 86_400_000,
      attemptsRetentionMs: config.archiveRetentionDays * 86_400_000,
      intervalMs: config.purgeIntervalSeconds * 1000,
      batchSize: 1000,
    },
    clock,
    logger,
  );
  retention.start();
  life.started('retention', () => retention.stop());
  // Superseded publication versions past their channel's retention, in the background.
  const purgePublications = (): void => {
    publications.purge().then(
      (removed) => removed > 0 && logger.info({ removed }, 'superseded publications past retention removed'),
      (err: unknown) => logger.error({ err }, 'publication retention failed; it runs again at the next interval'),
    );
  };
  life.started('publication retention', clock.every(config.purgeIntervalSeconds * 1000, purgePublications));
  // Expiring certificates: warned about at start, then once a day.
  const warnExpiring = (): void => {
    try {
      for (const c of expiringAll(pkiDir(config), config.trustedCaFiles, registry.participants())) {
        logger.warn({ certificate: c }, c.daysLeft < 0 ? `certificate of ${c.owner} has expired` : `certificate of ${c.owner} expires in ${c.daysLeft} days`);
      }
    } catch (err) {
      logger.error({ err }, 'could not check certificates for expiry');
    }
  };
  warnExpiring();
  life.started('expiry warnings', clock.every(86_400_000, warnExpiring));
  logger.info({ port, adminPort, portalPort, dataDir: config.dataDir, environment: config.environment, storage: backend.kind, coordination: coordination.kind }, 'OpenDIP listening');

  return {
    activity,
    alarms: alarms?.alarms ?? null,
    metrics,
    url: `https://localhost:${port}`,
    port,
    adminPort,
    portalUrl: `https://localhost:${portalPort}`,
    pki,
    signing,
    backend,
    coordination,
    delivery,
    events,
    retention,
    operations: { participant: operationsOf(app), operator: operationsOf(admin), anonymous: anonymousOperations },
    publications,
    publicPort,
    close: () => life.stop(),
  };
}
