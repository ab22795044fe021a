import type { AdminAct } from '../pipeline/admin-notice.js';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { ClockCheckView } from '../pipeline/clock-check.js';
import type { Delivery } from '../pipeline/delivery.js';
import type { Logger } from '../ports/logger.js';
import type { MpanDirectory } from '../pipeline/mpan-directory.js';
import type { Sealer } from '../security/at-rest.js';
import { nodeSecretFile } from '../security/node-secrets.js';
import { registerActivityLog } from './activity.js';
import type { ActivitySink } from '../pipeline/activity-recorder.js';
import { adminPkiRoutes, type AdminPkiDeps } from './admin-pki.js';
import { recordOperations } from './operations.js';
import { adminPortalRoutes } from './admin-portal.js';
import type { PortalAccountService } from '../pipeline/portal-accounts.js';
import type { Archive } from '../ports/archive.js';
import type { BackendHealth, CoordinationHealth, PeerClockOffset } from '../ports/backend.js';
import type { DeadLetters } from '../ports/dead-letters.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { OperatorAccounts } from '../pipeline/operators.js';
import { registerOperatorAuth, operatorRoutes } from './admin-operators.js';
import { deadLetterRoutes, type DeadLetterRouteOptions } from './admin-dead-letters.js';
import { requeueJobRoutes, type RequeueJobRouteOptions } from './admin-requeue-jobs.js';
import { registerOperatorDocs } from './admin-docs.js';
import { keyRoutes } from './admin-keys.js';
import { mpanRoutes } from './admin-mpan.js';
import { evidenceRoutes } from './admin-evidence.js';
import { queueRoutes, type QueueRouteOptions } from './admin-queues.js';
import { describeOperatorInputErrors, documentListenerAnswers, OPERATOR_AJV } from './admin-schemas.js';
import type { OperatorSessions } from '../pipeline/operator-sessions.js';
import type { OperatorMemory } from '../pipeline/operator-memory.js';
import { operatorStopping, useGracefulStop } from './stopping.js';
import { useAnswerDeadlines } from '../security/answer-deadlines.js';
import type { Clock } from '../ports/clock.js';
import { hostKnown } from '../security/host-names.js';
import { loggedUrl } from '../domain/activity.js';

/** In a cluster the same at every node: recorded in the shared store like the node secrets (node-secrets.ts). */
export const adminTokenFile = (dataDir: string): string => nodeSecretFile(dataDir, 'adminToken');

/** The operator's bearer token: made on first start, readable by the operator's account only. */
export function ensureAdminToken(dataDir: string): string {
  const file = adminTokenFile(dataDir);
  /* eslint-disable security/detect-non-literal-fs-filename -- a fixed name in the operator's data folder */
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  return readFileSync(file, 'utf8').trim();
  /* eslint-enable security/detect-non-literal-fs-filename */
}

export interface AdminDeps {
  /** The bootstrap token: an admin named `bootstrap` until the first admin account exists (src/api/admin-operators.ts). */
  token: string;
  /** The bootstrap token keeps working after that (a documented break-glass setting, off by default). */
  bootstrapBreakGlass: boolean;
  /**
   * The names a request's Host may give (src/security/host-names.ts knownHostNames: the loopback names and
   * config `operators.allowedHosts`); any other is answered 421 before anything else reads the request.
   */
  hostNames: ReadonlySet<string>;
  operators: OperatorAccounts;
  /** People's sign-in to the operator API. */
  sessions: OperatorSessions;
  /** The accounts as this node last read them: reads are checked against it while the store cannot be read. */
  memory?: OperatorMemory;
  journal: OperatorJournal;
  now(): number;
  /** Further operator route plugins (channels, the register feed, reports, …), registered after authentication and the document. */
  routes?: FastifyPluginAsync[];
  deadLetters: DeadLetters;
  /** Why a queue's recipient cannot receive now (DeadLetterRouteOptions), null when it can. */
  undeliverable?: DeadLetterRouteOptions['undeliverable'];
  /** Participants' requeue jobs: listed, and resumed once failed (POST /admin/requeue-jobs/{id}/resume). */
  requeueJobs: Pick<RequeueJobRouteOptions, 'replay' | 'jobs'>;
  archive: Pick<Archive, 'attempts' | 'receivedRequest'>;
  /** The clock skew a signature date was allowed at receipt: evidence is checked again with it. */
  signatureSkewMs: number;
  health(): BackendHealth;
  /** Whether what the nodes share (NATS) answers this node (GET /admin/health); absent: always ok. */
  coordination?(): CoordinationHealth;
  /** The peer whose clock is furthest from this node's (GET /admin/health); absent: one process. */
  clockOffset?(): PeerClockOffset | null;
  /** This node's own clock as participants' signature dates say (GET /admin/health clockCheck). */
  clockCheck?(): ClockCheckView;
  /** Lost cluster nodes, and forgetting one (POST /admin/cluster/nodes/{node}/removed); absent: one process. */
  nodes?: QueueRouteOptions['nodes'];
  /** What is still loading after a start (GET /admin/health), or null. */
  notReady?(): string | null;
  mpan: Pick<MpanDirectory, 'history' | 'apply'>;
  sealer: Pick<Sealer, 'rotate'>;
  pki: AdminPkiDeps;
  /** Portal accounts: a participant's users, and operators' portal sign-in. */
  portalAccounts: PortalAccountService;
  /** Tells a participant's administrators that an operator made an administrator of its portal. */
  adminNotice?: (participantDipId: string, actor: string, act: AdminAct) => Promise<unknown>;
  /** The key the portals in this process call the operator API with (see OperatorAuthDeps.inProcessKey). */
  inProcessKey?: string;
  delivery: Pick<Delivery, 'notify' | 'status' | 'resume'>;
  /** Queues' backlogs read from the store (GET /admin/queues). */
  backlog: QueueRouteOptions['backlog'];
  /** A queue's position in the store (POST /admin/queues/resume tells an unknown queue from one not halted). */
  queueState: QueueRouteOptions['queueState'];
  /** The delivery processes (workers > 1), as GET /admin/health reports them; absent in one process. */
  processes?: QueueRouteOptions['processes'];
  /** The ingest threads (ingestThreads > 0), as GET /admin/health reports them; absent without. */
  ingestThreads?: QueueRouteOptions['ingestThreads'];
  logger: Logger;
  /** Counts an archived request /admin/evidence could not open (dip_archive_unreadable_total{reader="evidence"}); absent: not counted. */
  evidenceUnreadable?: () => void;
  /** The API activity log (spec 5.8.1); absent when it is turned off. */
  activity?: ActivitySink;
  /** The activity log's backlog, as GET /admin/health reports it; absent when it is turned off. */
  activityLog?: QueueRouteOptions['activityLog'];
  /** How long a stopping listener waits for its clients to close their connections (config `http.stopDrainMs`). */
  stopDrainMs: number;
  /**
   * How long a client may leave a streamed answer (a listing report, up to 200,000 rows) unread, on this
   * clock (config `http.downloadIdleTimeoutMs`, useAnswerDeadlines); absent: unbounded.
   */
  answerDeadlines?: { downloadIdleTimeoutMs: number; clock: Clock };
}

/**
 * The operator's API, apart from the participants' listener: bound to the loopback interface; every call
 * names its operator by a bearer token (src/api/admin-operators.ts), so no participant credential can
 * reach it and every act is attributable.
 */
export function buildAdminServer(deps: AdminDeps): FastifyInstance {
  // Unknown properties are refused (400 naming them), not stripped: see OPERATOR_AJV.
  // return503OnClosing off: a stopping listener answers in the operator API's own shape (useGracefulStop).
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024, ajv: OPERATOR_AJV, schemaErrorFormatter: describeOperatorInputErrors, return503OnClosing: false });
  // First of all hooks: every call gets its ID and its record, whichever hook answers it.
  // The caller as the journal names the actor (`operator:<name>`, or `bootstrap` for the break-glass token,
  // which is no account: `operator:bootstrap` would also be an account of that name), so an auditor matches
  // a call to the act it journalled by one spelling. Records written before say `operator:bootstrap`.
  if (deps.activity) registerActivityLog(app, deps.activity, 'operator', (req) => req.operator?.actor ?? null, () => deps.now());
  // Next (the call has its ID, its record is made): a call naming another host is refused before anything
  // reads it. A page of another site whose name it rebinds to 127.0.0.1 (DNS rebinding) is same-origin with
  // this listener to the browser, which then sends the page's name as Host: without this it could try
  // sign-ins (POST /admin/session) and read the API's documentation from a browser on the operator's machine.
  app.addHook('onRequest', async (req, reply) => {
    if (hostKnown(req.headers.host, deps.hostNames)) return undefined;
    const shown = String(req.headers.host).slice(0, 100);
    // The names are not listed: a rebinding page reads this answer, and the allow-list may name internal hosts.
    return reply.code(421).send({ error: `the Host '${shown}' is not a name of this operator API (127.0.0.1, localhost, [::1], or one in operators.allowedHosts): a page of another site reaching it through DNS rebinding is refused` });
  });
  // A stopping DIP refuses what still arrives before anything reads it.
  useGracefulStop(app, deps.stopDrainMs, operatorStopping);
  // A listing report's answer holds its report slot until written: an operator client that stops reading is cut off.
  const deadlines = deps.answerDeadlines;
  if (deadlines) useAnswerDeadlines(app, deadlines, deadlines.clock, (url, sent) => deps.logger.warn({ url: loggedUrl(url), sentBytes: sent, idleMs: deadlines.downloadIdleTimeoutMs }, 'operator answer cut off: the client took no byte for the idle timeout'));
  recordOperations(app);
  // Every operation here takes JSON. Fastify's built-in text/plain parser made a text/plain body a string,
  // which then failed the schema as "body must be object" (a form body was 415 already): without it, any
  // body that is not application/json is refused alike, 415 naming the type received and the one expected.
  app.removeContentTypeParser('text/plain');
  // Refusals are {"error": "<what and why>"} (the error handler is in admin-operators.ts), unknown paths too.
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no such operation: ${req.method} ${req.url.split('?')[0] ?? ''}` }));
  const auth = {
    bootstrapToken: deps.token,
    bootstrapBreakGlass: deps.bootstrapBreakGlass,
    sessions: deps.sessions,
    ...(deps.memory ? { memory: deps.memory } : {}),
    storeDown: () => deps.health().state !== 'ok',
    credentials: deps.portalAccounts,
    operators: deps.operators,
    journal: deps.journal,
    logger: deps.logger,
    now: () => deps.now(),
    inProcessKey: deps.inProcessKey,
  };
  registerOperatorAuth(app, auth);
  documentListenerAnswers(app);
  // Plugins load in order: the OpenAPI document first, so it sees every route registered after it.
  void app.register(registerOperatorDocs, { environment: deps.pki.config.environment, dipId: deps.pki.config.dipId });
  void app.register(operatorRoutes, auth);
  void app.register(deadLetterRoutes, { deadLetters: deps.deadLetters, delivery: deps.delivery, ...(deps.undeliverable ? { undeliverable: deps.undeliverable } : {}), journal: deps.journal, now: () => deps.now(), logger: deps.logger });
  void app.register(requeueJobRoutes, { ...deps.requeueJobs, journal: deps.journal, logger: deps.logger, now: () => deps.now() });
  const clockCheck = deps.clockCheck?.bind(deps);
  void app.register(queueRoutes, {
    health: () => deps.health(),
    coordination: () => deps.coordination?.() ?? { state: 'ok' },
    ...(deps.clockOffset ? { clockOffset: () => deps.clockOffset?.() ?? null } : {}),
    ...(clockCheck ? { clockCheck: () => clockCheck() } : {}),
    notReady: () => deps.notReady?.() ?? null,
    ...(deps.nodes ? { nodes: deps.nodes } : {}),
    delivery: deps.delivery,
    backlog: deps.backlog,
    queueState: deps.queueState,
    ...(deps.processes ? { processes: deps.processes } : {}),
    ...(deps.ingestThreads ? { ingestThreads: deps.ingestThreads } : {}),
    ...(deps.activityLog ? { activityLog: deps.activityLog } : {}),
    archive: deps.archive,
    logger: deps.logger,
  });
  void app.register(keyRoutes, { sealer: deps.sealer, logger: deps.logger });
  void app.register(mpanRoutes, { mpan: deps.mpan, logger: deps.logger, now: () => deps.now() });
  void app.register(evidenceRoutes, { archive: deps.archive, signatureSkewMs: deps.signatureSkewMs, logger: deps.logger, unreadableSeen: deps.evidenceUnreadable ?? (() => {}) });
  void app.register(adminPkiRoutes, deps.pki);
  void app.register(adminPortalRoutes, { accounts: deps.portalAccounts, operators: deps.operators, ...(deps.adminNotice ? { adminNotice: deps.adminNotice } : {}) });
  for (const routes of deps.routes ?? []) void app.register(routes);
  return app;
}
