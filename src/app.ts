import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type DestinationStream } from 'pino';
import { monotonicClock, systemClock } from './adapters/clock.js';
import { adminAlarmRoutes } from './api/alarm-routes.js';
import { adminSavedReportRoutes } from './api/admin-saved-reports.js';
import { answers as adminAnswers } from './api/admin-schemas.js';
import { channelAdminRoutes } from './api/admin-channels.js';
import { registerRoutes } from './api/admin-register.js';
import { metricsRoutes } from './api/metrics.js';
import { maintenanceAdminRoutes } from './api/admin-maintenance.js';
import { publicationAdminRoutes } from './api/admin-publications.js';
import { assembleMaintenance } from './assemble/maintenance.js';
import type { Operation } from './api/operations.js';
import { registerReportRoutes, reportNames } from './api/report-routes.js';
import { activityRoutes } from './api/admin-activity.js';
import { SharedEncryptionKey } from './security/encryption-key-share.js';
import { startCore } from './assemble/core.js';
import { startExpiryWarnings, startRetention, startSavedReportMail } from './assemble/housekeeping.js';
import { startAnonymousListener, startOperatorListener, startParticipantListener, startPortalListener } from './assemble/listeners.js';
import { assembleMessageRoad } from './assemble/message-road.js';
import { startActivityLog, startAlarms, startTracing } from './assemble/observability.js';
import { assembleParticipants, issueCertificate } from './assemble/participants.js';
import { assembleOnboarding } from './assemble/onboarding.js';
import { SmtpMailer } from './adapters/mail/smtp-mailer.js';
import { tellAdminsOfOperatorAdmin, type AdminAct } from './pipeline/admin-notice.js';
import { onboardingRoutes } from './api/admin-onboarding.js';
import { participantRoutes } from './api/admin-participants.js';
import { openPublications, schedulePublicationRetention } from './assemble/publications.js';
import { openStorage } from './assemble/storage.js';
import { databaseFile } from './adapters/backend.js';
import { ReportThread } from './topology/report-threads.js';
import type { DipConfig } from './config.js';
import { Lifecycle } from './lifecycle.js';
import type { ActivityRecorder } from './pipeline/activity-recorder.js';
import type { ActivityLogStore } from './ports/activity-log.js';
import type { Alarms } from './pipeline/alarms.js';
import { ClockCheck } from './pipeline/clock-check.js';
import { ConnectionsExhausted } from './pipeline/connections-exhausted.js';
import { UnreachedHolders } from './pipeline/unreached-holders.js';
import type { DeliveryControl, DeliveryProcesses } from './topology/delivery-processes.js';
import type { IngestThreads } from './topology/ingest-threads.js';
import { queueDepths, type DipMetrics } from './pipeline/metrics.js';
import { OperatorAccounts } from './pipeline/operators.js';
import { OverloadGuard } from './pipeline/overload.js';
import { PortalAccountService } from './pipeline/portal-accounts.js';
import type { Publications } from './pipeline/publications.js';
import { Reports } from './pipeline/reports.js';
import { queueRules } from './pipeline/queue-rules.js';
import type { Retention } from './pipeline/retention.js';
import { webhookConfigDeps } from './pipeline/webhook-config.js';
import type { Backend, Coordination } from './ports/backend.js';
import type { Clock } from './ports/clock.js';
import type { LoadGauge } from './ports/load.js';
import type { Logger } from './ports/logger.js';
import type { EventEmitter } from 'node:events';
import type { LookupFunction } from 'node:net';
import { ContinuationTokens } from './security/continuation-token.js';
import { nodeSecretFile } from './security/node-secrets.js';
import { ensurePki, type PkiMaterial } from './security/pki.js';
import type { SigningKeyWatcher } from './security/signing-key.js';
import { ServerCertificateWatcher } from './security/server-certificate.js';
import { clientTrustStore } from './security/trust-store.js';

/** The OpenAPI documents of the listeners that serve one. */
export interface ApiDocuments {
  participant: object;
  operator: object;
}

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
  delivery: DeliveryControl;
  /** The delivery processes (workers > 1 on the embedded store), or null when this process delivers everything. */
  processes: DeliveryProcesses | null;
  /** The ingest threads (ingestThreads > 0), or null when the listeners' thread runs ingest. */
  ingestThreads: IngestThreads | null;
  /** 'dead-letter' (DeadLetterEvent), 'queue-halted' ({ queue, error }), 'health' (BackendHealth): for embedders; alarms read state (the queue-halted alarm, the workers' state). */
  events: EventEmitter;
  retention: Retention;
  /** Alarms (null when turned off). */
  alarms: Alarms | null;
  /** Prometheus metrics (GET /metrics on the operator listener). */
  metrics: DipMetrics;
  /** The API activity log's recorder (null when turned off). */
  activity: ActivityRecorder | null;
  /** The API activity log's store (null when turned off): for embedders, and fault tests that fill its disk. */
  activityStore: ActivityLogStore | null;
  /** Every operation each listener serves, as registered (the fuzzer of test/fuzz covers them all). */
  operations: { participant: readonly Operation[]; operator: readonly Operation[]; anonymous: readonly Operation[]; portal: readonly Operation[] };
  /** Each listener's OpenAPI document as it serves it (what `npm run api:generate` makes the typed clients from). */
  apiDocuments: { [K in keyof ApiDocuments]: () => ApiDocuments[K] };
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
  /** Start even though the embedded store's WAL lost committed transactions (`dip serve --accept-wal-loss`): alarmed and journalled. */
  acceptWalLoss?: boolean;
  /** How far behind the process runs (the event loop's delay by default; tests inject their own). */
  load?: LoadGauge;
  /** Between two catalogue validators compiled at start (`warmCatalogue`); tests hold it to see the node not ready. */
  warmPause?: () => Promise<void>;
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

/**
 * The wiring steps, in start order (each registers its stop with `life`; they stop in reverse). Each
 * subsystem is assembled in src/assemble/; this function only hands one step's parts to the next.
 */
async function wire(config: DipConfig, logger: Logger, clock: Clock, options: StartOptions, life: Lifecycle): Promise<RunningDip> {
  const pkiDirectory = pkiDir(config);
  const pki = await ensurePki(pkiDirectory, { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
  // Client certificates must chain to the environment's CA, or to the configured trusted CAs (PRD). Read
  // first: a broken trustedCaFiles entry stops the start before anything is opened.
  const trust = clientTrustStore(config.trustedCaFiles, pki.ca.certPem);
  const { backend, sealer, coordination, events, metrics } = await openStorage(config, clock, logger, life, options.onFatal, options.acceptWalLoss === true);
  // Delivery is assembled after what it reads; these run only once everything has started.
  const sweep = (why: string) => (): void => void delivery.sweep().catch((err: unknown) => logger.error({ err }, `sweep after ${why} failed`));
  // In a cluster every node hands out and decrypts with the encryption key recorded in the store.
  const sharedEncryptionKey = config.storage.kind === 'cluster' ? new SharedEncryptionKey(backend.registry, sealer, pkiDirectory, clock, logger, coordination.node ?? 'node') : undefined;
  const core = await startCore(config, pkiDirectory, pki, backend, clock, logger, life, sweep('a channel resumed'), options.warmPause, undefined, sharedEncryptionKey);
  const { registry, channelSettings, channels, channel, mpan, status, encryption, revocation, copies, signing } = core;
  const tracer = await startTracing(config, life);
  // The TLS pair every listener serves and webhook calls present: renewed files are used from the next
  // handshake, no restart.
  const serverCertificate = new ServerCertificateWatcher(pkiDirectory, pki.ca, pki.server, clock, logger);
  serverCertificate.start(config.signingKeyPollMs);
  life.started('server certificate watcher', () => serverCertificate.stop());
  const { destinations, load, delivery, processes, ingest, threads, replay } = assembleMessageRoad({
    config, pki, certificate: serverCertificate, backend, coordination, core, events, metrics, clock, logger, life, lookup: options.lookup, load: options.load, tracer, injectedClock: options.clock !== undefined,
    sealKeyId: () => sealer.currentKeyId,
  });
  const { externalCrls, lifecycle, selfService, registerPull } = await assembleParticipants({
    config, pkiDir: pkiDirectory, trust, backend, registry, channelSettings, clock, logger, life, registrationChanged: sweep('a registration change'), lookup: options.lookup,
  });
  const health = () => backend.health();
  const activityLog = await startActivityLog(config, clock, logger, life, backend.journal);
  const activity = activityLog?.recorder ?? null;
  if (activity) metrics.watchActivityLog(() => activity.status());
  const { publications, baseUrls } = await openPublications(config, backend, sealer, registry, copies, channel, clock, logger, life, metrics);
  const unreached = new UnreachedHolders(clock, config.observability.alarms.mpanUnreachedMinutes * 60_000);
  const exhausted = new ConnectionsExhausted(clock, logger, coordination.node);
  // Its window on the monotonic clock: the wall clock is what it suspects (a test's injected clock drives it).
  const clockCheck = new ClockCheck(options.clock ?? monotonicClock, config.maxClockSkewSeconds * 1000, coordination.node);
  const alarms = await startAlarms({ config, pkiDir: pkiDirectory, backend, coordination, registry, delivery, activity, activityDamage: activityLog?.damage ?? null, unreached, exhausted, clockCheck, processes, externalCrls, destinations, signing, clock, logger, life, portalUrl: () => portalBase ?? '' });
  const alarmApi = alarms ? { environment: config.environment, alarms: alarms.alarms, subscriptions: alarms.subscriptions, checkUrl: (url: string) => destinations.checkUrl(url), now: () => clock.now(), deliveryLatencyFloorSeconds: config.observability.alarms.deliveryLatencySeconds, journal: backend.journal } : null;
  // Refused submissions are counted from the API activity log (none when it is not kept).
  // On the embedded store, listings are folded and written on a report thread over the file (src/topology/report-threads.ts):
  // this thread writes the message road. PostgreSQL's stay here, in slices (its rows come over the pool).
  const listingThread = config.storage.kind === 'cluster' ? undefined : new ReportThread(databaseFile(config));
  if (listingThread) life.started('report thread', () => listingThread.close());
  const reports = new Reports(backend.traces, mpan, () => clock.now(), config.dipId, activityLog?.store ?? null, {
    counts: backend.reportCounts,
    after: (ms, fn) => clock.after(ms, fn),
    ...(listingThread ? { thread: listingThread } : {}),
    unreadableSeen: (transactionId, why) => {
      logger.warn({ transactionId, why }, 'a report skipped the archived copy of a message: it could not be opened');
      metrics.archiveUnreadable('report', 1);
    },
  });
  const maintenance = assembleMaintenance(backend, registry, channels, alarms, clock, logger);
  // Registered after the alarms' channel, so stopped before it: announcements under way finish over it.
  // Started at once: sends an earlier process (or a node that died) left recorded go now.
  maintenance.start();
  life.started('maintenance announcements', () => maintenance.stop());
  // A getter: after a rotation GET /certificates/dip serves the signing certificate in force.
  const certificates = { ca: pki.ca.certPem, get signing() { return signing.certificatePem(); }, get encryption() { return encryption.certificatePem(); } };

  const operators = new OperatorAccounts(backend.registry, backend.journal, clock);
  // The portal's own address is known once it listens (below), unless configured; read by the closures
  // given to saved reports' e-mail, onboarding and the portal, only when they send (declared before them).
  let portalBase = config.onboarding.portalUrl;
  // Saved reports (spec 5.11): the portals' and both APIs', in one store; e-mailed where an SMTP server is
  // configured, to addresses that confirmed (the e-mail's link is the portal's, read when a mail is sent).
  const reportRecipients = startSavedReportMail(config, backend, {
    reports,
    mayAct: (dipId) => registry.active(dipId) !== undefined,
    operatorEnabled: async (name) => (await operators.list()).some((o) => o.name === name && !o.disabled),
    portalUrl: () => portalBase ?? '',
  }, clock, logger, life);
  const savedReports = { store: backend.savedReports, mailing: config.observability.alarms.smtp !== null, recipients: reportRecipients };
  const overload = new OverloadGuard(config.overload, load, config.bodyLimitBytes);
  metrics.watchOverload(() => overload.stats());
  const apiDeps = {
    config, logger, ingest, registry, selfService, webhooks: backend.registry, operatorJournal: { journal: backend.journal, now: () => clock.now() }, delivery, replay, status,
    continuation: ContinuationTokens.fromFile(nodeSecretFile(config.dataDir, 'replayToken')), queues: backend.log, journal: backend.archive, deadLetters: backend.deadLetters, randomBytes, copies, channel, health, clock, destinations, publications,
    notReady: () => core.catalogue.notReady(),
    overload,
    certificates,
    answerSigner: signing.answers(),
    ...(activity ? { activity } : {}),
    ...(alarmApi ? { alarms: alarmApi } : {}),
    unreached,
    exhausted,
    clockCheck,
    reports,
    savedReports,
    maintenance,
    metrics,
  };
  const participant = await startParticipantListener(config, apiDeps, serverCertificate, trust, { replay: coordination.replayGuard, rateLimits: coordination.rateLimits }, revocation, externalCrls, life);
  const host = config.hostnames[0] ?? 'localhost';
  baseUrls.participant = config.publicUrl ?? `https://${host}:${participant.port}`;
  const anonymous = await startAnonymousListener(config, apiDeps, serverCertificate, life);
  // Behind a proxy, the address anyone reaches the listener at, as the participant listener's publicUrl.
  if (anonymous) baseUrls.public = config.publications.anonymous.publicUrl ?? `https://${host}:${anonymous.port}`;
  const portalAccounts = new PortalAccountService(backend.portalAccounts, sealer, clock, `OpenDIP ${config.environment}`, (id) => registry.participant(id) !== undefined, backend.journal, config.portal.firstPasswordHours * 3_600_000);
  // Accounts made before first passwords expired still on theirs: their time runs from this upgrade.
  const expiring = await portalAccounts.expireOldFirstPasswords();
  if (expiring > 0) logger.info({ accounts: expiring, hours: config.portal.firstPasswordHours }, 'portal accounts still on a first password made before first passwords expired: theirs expire from now');
  const issueFromCsr = (csrPem: string, dipId: string, organisation: string) => issueCertificate(pkiDirectory, config, csrPem, dipId, organisation);
  const onboarding = await assembleOnboarding(config, {
    clock, logger, journal: backend.journal, lifecycle, registry, registryStore: backend.registry, accounts: portalAccounts, issueCertificate: issueFromCsr,
    portalUrl: () => portalBase ?? '',
  }, life);
  // The participant's administrators told when an operator makes one of its portal's administrators.
  const noticeMailer = config.observability.alarms.smtp ? new SmtpMailer(config.observability.alarms.smtp) : null;
  if (noticeMailer) life.started('administrator notice e-mail', () => noticeMailer.close());
  const operator = await startOperatorListener(config, {
    operators,
    evidenceUnreadable: () => metrics.archiveUnreadable('evidence', 1),
    journal: backend.journal,
    now: () => clock.now(),
    portalAccounts,
    adminNotice: (dipId: string, actor: string, act: AdminAct) => tellAdminsOfOperatorAdmin({ mailer: noticeMailer, store: backend.registry, journal: backend.journal, logger, now: () => clock.now() }, dipId, actor, act),
    deadLetters: backend.deadLetters,
    undeliverable: queueRules(registry, channel).undeliverable,
    requeueJobs: { replay, jobs: backend.requeueJobs },
    archive: backend.archive,
    mpan,
    delivery,
    backlog: (also) => queueDepths(backend.log, clock.now(), also),
    queueState: (queue) => backend.log.queueState(queue),
    ...(processes ? { processes: () => processes.processes() } : {}),
    ...(threads ? { ingestThreads: () => threads.threads() } : {}),
    logger,
    sealer,
    health,
    coordination: () => coordination.health(),
    ...(coordination.clockOffset ? { clockOffset: coordination.clockOffset.bind(coordination) } : {}),
    clockCheck: () => clockCheck.view(),
    ...(coordination.lostNodes && coordination.forgetNode ? { nodes: { lostNodes: coordination.lostNodes.bind(coordination), forgetNode: coordination.forgetNode.bind(coordination) } } : {}),
    notReady: () => core.catalogue.notReady(),
    pki: { config, pkiDir: pkiDirectory, revocations: backend.registry, participants: () => registry.participants() },
    ...(activityLog ? { activity: activityLog.recorder, activityLog: () => ({ ...activityLog.recorder.status(), damaged: activityLog.damage.current() }) } : {}),
    routes: [
      async (a) => registerReportRoutes(a, reports, { prefix: '/admin/reports', answers: adminAnswers, viewer: () => ({ kind: 'operator' }), fail: (reply, _req, status, error) => reply.code(status).send({ error }), now: () => clock.now(), names: reportNames(channel, registry, config.dipId), logger }),
      async (a) => metricsRoutes(a, { metrics }),
      async (a) => channelAdminRoutes(a, { channels: channelSettings }),
      async (a) => registerRoutes(a, { lifecycle, pull: registerPull }),
      async (a) => onboardingRoutes(a, { onboarding }),
      async (a) => participantRoutes(a, { registry, onboarding, lifecycle, selfService }),
      async (a) => maintenanceAdminRoutes(a, { maintenance }),
      async (a) => publicationAdminRoutes(a, { publications, delivery }),
      ...(alarmApi ? [async (a: FastifyInstance) => adminAlarmRoutes(a, alarmApi)] : []),
      async (a) => adminSavedReportRoutes(a, { ...savedReports, reports, channelId: (id) => channel(id)?.interfaceId, now: () => clock.now() }),
      ...(activityLog ? [async (a: FastifyInstance) => activityRoutes(a, { store: activityLog.store, damage: activityLog.damage, journal: backend.journal, now: () => clock.now() })] : []),
    ],
  }, metrics, clock, life);
  const portal = await startPortalListener(config, {
    config, logger, clock, accounts: portalAccounts, registry, channel, channels,
    webhooks: webhookConfigDeps(config, { registry, webhooks: backend.registry, delivery, destinations, operatorJournal: { journal: backend.journal, now: () => clock.now() } }),
    replay, archive: backend.archive, deadLetters: backend.deadLetters, log: backend.log, copies, channelSettings, delivery, maintenance, certificates,
    alarms: alarmApi, publications, activityLog: activityLog?.store ?? null, reports, selfService,
    savedReports,
    operatorApi: operator.operatorApi,
    issueCertificate: issueFromCsr,
    onboarding,
  }, activity, metrics, serverCertificate, life);
  const portalPort = portal.port;
  portalBase ??= `https://${host}:${portalPort}`;

  // Stopped before the listeners and the store (registered after them): no call is left half made.
  await delivery.start();
  life.started('delivery', () => delivery.stop());
  lifecycle.start();
  registry.onChange(() => lifecycle.kick());
  life.started('register', () => lifecycle.stop());
  // The scheduled pull from the register's endpoint (config register.pull); stopped before the listeners and the store.
  if (config.register.pull) registerPull.start(config.register.pull, config.register.pull.intervalMinutes);
  life.started('register pull', () => registerPull.stop());
  await replay.start();
  life.started('requeue jobs', () => replay.stop());
  const retention = startRetention(config, backend, channelSettings, clock, logger, life);
  schedulePublicationRetention(publications, config.purgeIntervalSeconds * 1000, clock, logger, life);
  startExpiryWarnings(config, pkiDirectory, registry, clock, logger, life);
  const port = participant.port;
  logger.info({ port, adminPort: operator.port, portalPort, dataDir: config.dataDir, environment: config.environment, storage: backend.kind, coordination: coordination.kind }, 'OpenDIP listening');

  return {
    activity,
    activityStore: activityLog?.store ?? null,
    alarms: alarms?.alarms ?? null,
    metrics,
    url: `https://localhost:${port}`,
    port,
    adminPort: operator.port,
    portalUrl: `https://localhost:${portalPort}`,
    pki,
    signing,
    backend,
    coordination,
    delivery,
    processes,
    ingestThreads: threads,
    events,
    retention,
    operations: { participant: participant.operations, operator: operator.operations, anonymous: anonymous?.operations ?? [], portal: portal.operations },
    apiDocuments: { participant: participant.document, operator: operator.document },
    publications,
    publicPort: anonymous?.port ?? null,
    close: () => life.stop(),
  };
}
