import type { RecipientConfirmation } from '../pipeline/mail-recipients.js';
import type { RandomBytes } from '../domain/attempt-id.js';
import type { Archive } from '../ports/archive.js';
import type { DeadLetters } from '../ports/dead-letters.js';
import type { DipConfig } from '../config.js';
import type { ActivitySink } from '../pipeline/activity-recorder.js';
import type { UnreachedHolders } from '../pipeline/unreached-holders.js';
import type { ConnectionsExhausted } from '../pipeline/connections-exhausted.js';
import type { ClockCheck } from '../pipeline/clock-check.js';
import type { DipMetrics } from '../pipeline/metrics.js';
import type { AlarmApiDeps } from './alarm-routes.js';
import type { Reports } from '../pipeline/reports.js';
import type { SavedReports } from '../ports/saved-reports.js';
import type { Channel } from '../pipeline/channels.js';
import type { Delivery } from '../pipeline/delivery.js';
import type { Ingest } from '../pipeline/ingest.js';
import type { OverloadGuard } from '../pipeline/overload.js';
import type { Maintenance } from '../pipeline/maintenance.js';
import type { Publications } from '../pipeline/publications.js';
import type { RecipientCopies } from '../pipeline/recipient-copy.js';
import type { Registry } from '../pipeline/registry.js';
import type { Replay } from '../pipeline/replay.js';
import type { SelfService } from '../pipeline/self-service.js';
import type { StatusMessages } from '../pipeline/status.js';
import type { BackendHealth } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { MessageLog } from '../ports/message-log.js';
import type { RegistryStore } from '../ports/registry.js';
import type { ContinuationTokens } from '../security/continuation-token.js';
import type { AnswerSigner } from '../security/signing-key.js';
import type { WebhookConfigDeps } from '../pipeline/webhook-config.js';
import type { WebhookDestinations } from '../security/webhook-destinations.js';

/** What the HTTP routes need; wired once in app.ts. */
export interface ApiDeps {
  /** Participant self-service (roles, channels, connection provider, API key, certificate); absent: no /participants routes. */
  selfService?: SelfService;
  config: DipConfig;
  logger: Logger;
  /** The submission pipeline: on this thread, or handed to the ingest threads (src/topology/ingest-threads.ts). */
  ingest: Pick<Ingest, 'handle' | 'validate' | 'traced'>;
  registry: Registry;
  webhooks: Pick<RegistryStore, 'putWebhook' | 'deleteWebhook' | 'webhooks'>;
  /** Webhook changes are journalled (src/pipeline/webhook-config.ts); absent: not journalled. */
  operatorJournal?: WebhookConfigDeps['operatorJournal'];
  delivery: Pick<Delivery, 'notify'>;
  replay: Replay;
  /** Replay continuation tokens (X-Continuation-Token): UUIDs authenticated with the data directory's key. */
  continuation: Pick<ContinuationTokens, 'issue' | 'read' | 'issueListing' | 'readListing'>;
  status: StatusMessages;
  queues: Pick<MessageLog, 'queueState' | 'readQueue' | 'acknowledge' | 'markPulled'>;
  /**
   * The delivery journal: a pull's acknowledgement is recorded as its delivery (reports, journeys); and
   * the archive's parties of a transaction, for the correlation ID answered to a resend (MSG1006).
   */
  journal: Pick<Archive, 'recordAttempt' | 'transactionParties' | 'receivedRequest'>;
  /** A pull's acknowledgement names the messages in its range the DIP set aside before it (src/pipeline/set-aside-unseen.ts). */
  deadLetters: Pick<DeadLetters, 'deadLetters'>;
  /** Cryptographic randomness for the attempt ID a pull's acknowledgement is journalled under (src/domain/attempt-id.ts). */
  randomBytes: RandomBytes;
  /** The copy a recipient gets (obfuscation by role, encryption for it). */
  copies: Pick<RecipientCopies, 'copyFor' | 'senderMustNotEncrypt'>;
  /**
   * Signs pull and replay answers with the DIP's signing key in force (the X-DIP-* headers of a webhook
   * call, over an answer's own string: Signer.signAnswer), off the event loop as webhook calls are.
   */
  answerSigner: AnswerSigner;
  /** The DIP's public certificates: its CA, its signing certificate, and its encryption certificate (pattern 2). */
  certificates: { ca: string; signing: string; encryption: string };
  channel(id: string): Channel | undefined;
  clock: Clock;
  /** Whether the store takes writes (GET /health, /ready). */
  health(): BackendHealth;
  /** Why the node should not take messages yet besides the store (the catalogue loading), or null (GET /ready). */
  notReady?(): string | null;
  /** Which callback URLs may be registered (outside DEV: none on internal networks). */
  destinations: Pick<WebhookDestinations, 'checkUrl'>;
  /** Refuses submissions with 503 while the DIP cannot keep up (none: never). */
  overload?: OverloadGuard;
  /** The API activity log (spec 5.8.1); absent when it is turned off. */
  activity?: ActivitySink;
  /** Prometheus counters (requests by route and status). */
  metrics?: DipMetrics;
  /** Pattern B: large publications. */
  publications: Publications;
  /** Alarms and their subscriptions (absent when alarms are turned off). */
  alarms?: AlarmApiDeps;
  /** Where the holders an MPAN lookup named who got no copy are noted, for the `mpan-holder-unreached` alarm. */
  unreached?: Pick<UnreachedHolders, 'record'>;
  /** Where a listener refusing new connections (its overall cap, EMFILE) is told, for the log and the `connections-exhausted` alarm. */
  exhausted?: Pick<ConnectionsExhausted, 'refused'>;
  /** Where each signature date checked is told, for the DIP's own clock check (the `dip-clock` alarm, GET /admin/health). */
  clockCheck?: Pick<ClockCheck, 'dated'>;
  /** Maintenance notices (spec 5.13.5); absent: no /maintenance route, and no public maintenance page. */
  maintenance?: Pick<Maintenance, 'current' | 'publicWindows' | 'withdrawnWindows' | 'knowsChannel'>;
  /** Reports, traces and journeys (spec 5.11). */
  reports?: Reports;
  /** Saved reports (spec 5.11), the portals' store; `mailing`: an SMTP server is configured. With `reports`: /observability/saved-reports. */
  savedReports?: { store: Pick<SavedReports, 'list' | 'get' | 'create' | 'remove'>; mailing: boolean; recipients: Pick<RecipientConfirmation, 'ask'> | null };
}

/** What every route plugin is registered with (`app.register(plugin, { deps })`). */
export interface RoutePluginOptions {
  deps: ApiDeps;
}
