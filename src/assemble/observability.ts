import { SmtpMailer } from '../adapters/mail/smtp-mailer.js';
import { RecipientConfirmation } from '../pipeline/mail-recipients.js';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { activityLogFile, openActivityLog, openAlarmSubscriptions } from '../adapters/backend.js';
import { readDiskSpace } from '../adapters/disk-space.js';
import { SmtpAlarmChannel } from '../adapters/mail/alarm-channel.js';
import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import { ActivityLogDamage, damageWatched } from '../pipeline/activity-damage.js';
import { ActivityRecorder } from '../pipeline/activity-recorder.js';
import type { UnreachedHolders } from '../pipeline/unreached-holders.js';
import { activityDamageAlarms, activityLogAlarms, diskSpaceAlarms, crlAlarms, deliveryLatencyAlarms, unreachedHolderAlarms, certificateAlarms, clockSkewAlarms, coordinationAlarms, nodeLostAlarms, deadLetterAlarms, deliveryProcessAlarms, haltedQueueAlarms, queueAlarms, withheldCopyAlarms, storageAlarms, walLossAlarms, webhookFailingAlarms, type RestartRun } from '../pipeline/alarm-sources.js';
import { Alarms } from '../pipeline/alarms.js';
import type { ClockCheck } from '../pipeline/clock-check.js';
import type { ConnectionsExhausted } from '../pipeline/connections-exhausted.js';
import type { Delivery } from '../pipeline/delivery.js';
import { queueDepths } from '../pipeline/metrics.js';
import type { Registry } from '../pipeline/registry.js';
import type { AlarmChannel, AlarmSubscriptionStore } from '../ports/alarms.js';
import type { ActivityLogStore } from '../ports/activity-log.js';
import type { Backend, Coordination } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { MessageTracer } from '../ports/tracing.js';
import { expiringAll } from '../security/expiry.js';
import type { ExternalCrlWatcher } from '../security/external-crl.js';
import type { SigningKeyWatcher } from '../security/signing-key.js';
import type { WebhookDestinations } from '../security/webhook-destinations.js';

/**
 * OpenTelemetry (README "OpenTelemetry traces"): the SDK is loaded only when configured. Started before
 * delivery and the listeners, so it stops after them and its last spans are flushed. Null when off.
 */
export async function startTracing(config: DipConfig, life: Lifecycle): Promise<MessageTracer | null> {
  const settings = config.observability.tracing;
  if (settings.exporter === 'none') return null;
  const { OtelMessageTracer } = await import('../adapters/otel-tracer.js');
  const tracer = new OtelMessageTracer(settings);
  life.started('tracing', () => tracer.shutdown());
  return tracer;
}

/**
 * The API activity log: opened and started before the listeners, stopped after them (every answered
 * request is written before the store closes). Null when turned off.
 */
export async function startActivityLog(
  config: DipConfig,
  clock: Clock,
  logger: Logger,
  life: Lifecycle,
  journal: Pick<OperatorJournal, 'append'>,
): Promise<{ recorder: ActivityRecorder; store: ActivityLogStore; lostOnOpen: string | null; damage: ActivityLogDamage } | null> {
  const settings = config.observability.activityLog;
  if (!settings.enabled) return null;
  const opened = await openActivityLog(config, clock, logger);
  life.started('activity log store', () => opened.close());
  // Told once through it, wherever the store is used: its own error still answers the caller as before.
  const damage = new ActivityLogDamage(opened, { clock, logger, journal });
  const store = damageWatched(opened, damage);
  // Not only what this open found: `dip audit verify` run first after the crash took the loss itself.
  const lostOnOpen = (await store.unannouncedWalLosses?.()) ?? null;
  if (lostOnOpen !== null) {
    // Accepted without a flag (SqliteActivityLog.lostOnOpen says why), so told everywhere an auditor or the
    // operator on call looks: the log, the journal, a storage alarm (startAlarms) and this process's chain.
    logger.error({ lost: lostOnOpen }, 'activity log: started accepting API activity records its WAL lost (audit evidence gone)');
    await journal.append({ at: clock.now(), actor: 'bootstrap', action: 'storage.activity-wal-loss', target: 'activity.db', before: null, after: { lost: lostOnOpen }, status: null });
  }
  const recorder = new ActivityRecorder(
    store,
    {
      label: hostname(),
      flushIntervalMs: settings.flushIntervalMs,
      maxBatch: 2_000,
      maxBodyBytes: settings.maxBodyBytes,
      maxPending: settings.maxWaiting,
    },
    clock,
    logger,
  );
  await recorder.start();
  life.started('activity log', () => recorder.stop());
  if (lostOnOpen !== null) {
    const note = { lost: lostOnOpen, reason: 'records committed by an earlier process were lost with the WAL of activity.db after a crash; its chains end earlier than they did' };
    recorder.record({ requestId: randomUUID(), at: clock.now(), listener: 'activity-log', caller: null, remote: null, method: 'WAL-LOSS', url: '', status: null, durationMs: 0, rawBody: JSON.stringify(note) });
    await recorder.flush();
    await store.walLossesAnnounced?.();
  }
  // Whatever no operator acknowledged yet, announced now or at an earlier start: health and the alarm hold it.
  await damage.load();
  return { recorder, store, lostOnOpen, damage };
}

export interface AlarmParts {
  config: DipConfig;
  pkiDir: string;
  backend: Backend;
  /** What the nodes share (NATS): the `coordination` alarm. */
  coordination: Pick<Coordination, 'health' | 'notifier' | 'node' | 'clockOffset' | 'lostNodes'>;
  registry: Registry;
  delivery: Pick<Delivery, 'status'>;
  /** The API activity log's recorder, or null when it is off: the `activity-log` alarm. */
  activity: Pick<ActivityRecorder, 'status'> | null;
  /** The activity log's losses and damage not acknowledged (startActivityLog), or null when it is off: a `storage` alarm. */
  activityDamage: Pick<ActivityLogDamage, 'current'> | null;
  /** The MPAN lookup's holders left out of accepted messages lately: the `mpan-holder-unreached` alarm. */
  unreached: Pick<UnreachedHolders, 'recent' | 'quietMs'>;
  /** Listeners refusing new connections: the `connections-exhausted` alarm. */
  exhausted: Pick<ConnectionsExhausted, 'conditions'>;
  /** Signature dates refused against this node's clock: the `dip-clock` alarm. */
  clockCheck: Pick<ClockCheck, 'conditions'>;
  /** The external CAs' CRLs (crlFiles), or null: the `crl-stale` alarm. */
  externalCrls: Pick<ExternalCrlWatcher, 'stale'> | null;
  /** The delivery processes (workers > 1), or null: the `delivery-process` alarm. */
  processes: { restartRuns(): RestartRun[] } | null;
  destinations: WebhookDestinations;
  /** The DIP's signing key in force: notices are signed with it, over a notice's own string. */
  signing: Pick<SigningKeyWatcher, 'notices'>;
  clock: Clock;
  /** The user portal's base address: the link of an alarm address's confirmation e-mail. */
  portalUrl: () => string;
  logger: Logger;
  life: Lifecycle;
}

/**
 * Alarms on dead letters, queue depth, age and damage, halted queues, failing webhooks, expiring certificates, storage,
 * coordination, delivery processes restarted again and again and this node's own clock, noticed by
 * e-mail and webhook. Null when turned off.
 */
export async function startAlarms({ config, pkiDir, backend, coordination, registry, delivery, activity, activityDamage, unreached, exhausted, clockCheck, processes, externalCrls, destinations, signing, clock, logger, life, portalUrl }: AlarmParts): Promise<{ alarms: Alarms; subscriptions: AlarmSubscriptionStore; channel: AlarmChannel } | null> {
  const settings = config.observability.alarms;
  if (!settings.enabled) return null;
  const sources = [
    deadLetterAlarms(backend.deadLetters, clock),
    queueAlarms(() => queueDepths(backend.log, clock.now()), settings.queueDepthThreshold, settings.queueAgeMinutes * 60_000, clock),
    webhookFailingAlarms(() => delivery.status(), settings.webhookFailingMinutes * 60_000, clock),
    deliveryLatencyAlarms(() => delivery.status(), settings.deliveryLatencySeconds * 1000, settings.deliveryLatencyWindowMinutes * 60_000),
    haltedQueueAlarms(() => delivery.status(), clock),
    withheldCopyAlarms(() => delivery.status(), clock),
    certificateAlarms(() => expiringAll(pkiDir, config.trustedCaFiles, registry.participants(), settings.certificateDays), clock, undefined, (l) => registry.onChange(l)),
    storageAlarms(() => backend.health(), clock, coordination.node),
    walLossAlarms(() => backend.walLossAccepted ?? null, clock.now(), coordination.node),
    ...(activityDamage ? [activityDamageAlarms(() => activityDamage.current(), coordination.node)] : []),
    // The data volume filling (the activity log, kept for ever, among what fills it): SQLite's activity.db is on it.
    ...(config.storage.minFreeDiskMb === null ? [] : [diskSpaceAlarms(() => readDiskSpace(config.dataDir, activity && config.storage.kind === 'sqlite' ? activityLogFile(config) : null), config.storage.minFreeDiskMb, clock, coordination.node)]),
    coordinationAlarms(() => coordination.health(), clock, coordination.node, 2 * config.storage.nats.leaseTtlMs),
    ...(coordination.clockOffset ? [clockSkewAlarms(coordination.clockOffset.bind(coordination), clock, coordination.node)] : []),
    ...(coordination.lostNodes ? [nodeLostAlarms(coordination.lostNodes.bind(coordination), coordination.node)] : []),
    ...(activity ? [activityLogAlarms(() => activity.status(), clock, coordination.node)] : []),
    unreachedHolderAlarms(() => unreached.recent(), unreached.quietMs, coordination.node),
    ...(processes ? [deliveryProcessAlarms(() => processes.restartRuns())] : []),
    () => exhausted.conditions(),
    () => clockCheck.conditions(),
    ...(externalCrls ? [crlAlarms(() => externalCrls.stale(), coordination.node)] : []),
  ];
  const stored = await openAlarmSubscriptions(config);
  life.started('alarm subscriptions', () => stored.close());
  const alarmsLost = stored.lostOnOpen ?? null;
  if (alarmsLost !== null) {
    // Accepted without a flag (SqliteAlarmSubscriptions.lostOnOpen says why): told as activity.db's loss is.
    logger.error({ lost: alarmsLost }, 'alarms: started accepting alarm subscriptions their WAL lost');
    await backend.journal.append({ at: clock.now(), actor: 'bootstrap', action: 'storage.alarms-wal-loss', target: 'alarms.db', before: null, after: { lost: alarmsLost }, status: null });
    sources.push(walLossAlarms(() => alarmsLost, clock.now(), coordination.node, 'storage-alarms-wal-loss'));
  }
  const channel = new SmtpAlarmChannel(settings.smtp, destinations, signing.notices(), config.environment);
  life.started('alarm notices', () => channel.close());
  // A participant's subscription's address is e-mailed only once it confirmed (as saved reports' addresses are).
  const confirmMailer = settings.smtp ? new SmtpMailer(settings.smtp) : null;
  if (confirmMailer) life.started('alarm address confirmations', () => confirmMailer.close());
  const recipients = confirmMailer ? new RecipientConfirmation({ store: backend.mailRecipients, mailer: confirmMailer, clock, logger, portalUrl }) : undefined;
  const alarms = new Alarms(sources, stored, channel, { evaluateIntervalMs: settings.evaluateIntervalMs, maxNoticesPerHour: settings.maxNoticesPerHour }, clock, logger, coordination.notifier, recipients, { store: stored, node: coordination.node ?? '' });
  // A subscription put or removed through this node's routes is judged by its thresholds from the next evaluation.
  const subscriptions: AlarmSubscriptionStore = {
    list: (owner) => stored.list(owner),
    put: async (s) => {
      await stored.put(s);
      alarms.subscriptionsChanged();
    },
    remove: async (owner, id) => {
      const removed = await stored.remove(owner, id);
      alarms.subscriptionsChanged();
      return removed;
    },
    close: () => stored.close(),
  };
  alarms.start();
  life.started('alarms', () => alarms.stop());
  return { alarms, subscriptions, channel };
}
