import type { OperatorApi } from '../openapi-client/index.js';
import type { RecipientConfirmation } from '../pipeline/mail-recipients.js';
import type { DipConfig } from '../config.js';
import type { Channel, ChannelDirectory } from '../pipeline/channels.js';
import type { Delivery } from '../pipeline/delivery.js';
import type { Maintenance } from '../pipeline/maintenance.js';
import type { Alarms, SubscriptionDeps } from '../pipeline/alarms.js';
import type { PortalAccountService } from '../pipeline/portal-accounts.js';
import type { Publications } from '../pipeline/publications.js';
import type { Reports } from '../pipeline/reports.js';
import type { Onboarding } from '../pipeline/onboarding.js';
import type { SelfService } from '../pipeline/self-service.js';
import type { ActivityLogStore } from '../ports/activity-log.js';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AlarmSubscriptionStore } from '../ports/alarms.js';
import type { SavedReports } from '../ports/saved-reports.js';
import type { RecipientCopies } from '../pipeline/recipient-copy.js';
import type { ChannelSettings } from '../pipeline/channel-settings.js';
import type { Registry } from '../pipeline/registry.js';
import type { Replay } from '../pipeline/replay.js';
import type { WebhookConfigDeps } from '../pipeline/webhook-config.js';
import type { Archive } from '../ports/archive.js';
import type { Clock } from '../ports/clock.js';
import type { DeadLetters } from '../ports/dead-letters.js';
import type { Logger } from '../ports/logger.js';
import type { MessageLog } from '../ports/message-log.js';
import type { SessionSigner } from '../security/portal-session.js';
import type { DeviceCookies } from '../security/device-cookie.js';

/** What the portals need; wired once in app.ts. */
export interface PortalDeps {
  config: DipConfig;
  logger: Logger;
  clock: Clock;
  accounts: PortalAccountService;
  sessions: SessionSigner;
  /** The portals' device cookies (OWASP): a browser that signed in to an account is trusted by the sign-in throttles for it. */
  devices: DeviceCookies;
  registry: Registry;
  channel(id: string): Channel | undefined;
  channels: Pick<ChannelDirectory, 'all'>;
  /** The participant API's webhook operation, with the same dependencies. */
  webhooks: WebhookConfigDeps;
  replay: Pick<Replay, 'replay' | 'requeue' | 'jobsOf' | 'progress'>;
  archive: Pick<Archive, 'findArchived' | 'attempts' | 'archivedChannels'>;
  deadLetters: Pick<DeadLetters, 'deadLetters'>;
  log: Pick<MessageLog, 'append'>;
  /** What the recipient may see of a message (obfuscation by role, encryption for it), as its webhook got it. */
  copies: Pick<RecipientCopies, 'copyFor'>;
  /** A channel's obfuscation rules as they were when a copy was delivered (its settings history). */
  channelSettings: Pick<ChannelSettings, 'obfuscationAt'>;
  delivery: Pick<Delivery, 'notify'>;
  /** Maintenance notices published and not yet over (the participant API's GET /maintenance/notices). */
  maintenance: Pick<Maintenance, 'current'>;
  /** The DIP's public certificates (downloads). */
  certificates: { ca: string; signing: string; encryption: string };
  /**
   * The operator API itself, called in-process (Fastify inject) as the named operator: every operator
   * action in the portal is carried out, authorised (the operator's role) and journalled by exactly the
   * code tooling uses. A typed client (src/openapi-client): its types are generated from the operator API's
   * OpenAPI document, so a route's schema change breaks the portal's build, not its pages.
   */
  operatorApi(operator: string): OperatorApi;
  /** Alarm subscriptions, created and checked as the alarm routes do (null when alarms are turned off). */
  alarms: (SubscriptionDeps & { alarms: Pick<Alarms, 'current' | 'resolved'>; subscriptions: Pick<AlarmSubscriptionStore, 'list' | 'put' | 'remove'> }) | null;
  /** Portal users' saved reports (src/ports/saved-reports.ts); `mailing`: an SMTP server is configured, so they may be e-mailed. */
  /** recipients: the report addresses' confirmation (null: no e-mail here). */
  savedReports: { store: Pick<SavedReports, 'list' | 'get' | 'create' | 'remove'>; mailing: boolean; recipients: RecipientConfirmation | null };
  /** Pattern B: publications a participant may list and download (the API's own rule, pipeline/publications.ts). */
  publications: Pick<Publications, 'find' | 'get' | 'read' | 'publisherRoles'>;
  /**
   * Records every request of the portals' listener in the API activity log, each from the caller named
   * (the API's own hooks, wired in src/assemble/listeners.ts); null when the log is turned off.
   */
  recordActivity: ((app: FastifyInstance, callerOf: (req: FastifyRequest) => string | null) => void) | null;
  /** The API activity log, for a participant's own requests (null when it is turned off). */
  activityLog: Pick<ActivityLogStore, 'recent'> | null;
  /** Reports (spec 5.11) and the audit reports (5.11.3), cut to what the viewer may see as the reports API does. */
  reports: Pick<Reports, 'throughput' | 'latency' | 'senderAudit' | 'trace' | 'mpanTrace'>;
  /**
   * Participant self-service (optional roles and channels, the DIP Connection Provider nomination): the
   * participant API's own functions, so a change from the portal is checked and journalled as one from the API.
   */
  selfService: Pick<SelfService, 'view' | 'joinRole' | 'leaveRole' | 'joinChannel' | 'leaveChannel' | 'nominate' | 'setMaintenanceEmail'>;
  /** A certificate for the participant's own DIP ID from its CSR (the function `dip pki issue --csr` and the operator API call). */
  issueCertificate(csrPem: string, dipId: string, organisation: string): Promise<string>;
  /** Companies applying to use the DIP on the public form (/portal/apply, spec 5.12.1). */
  onboarding: Pick<Onboarding, 'apply' | 'verify'>;
}
