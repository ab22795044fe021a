import type { PublicNotice } from '../domain/maintenance.js';

/** The alarm rules (spec 5.11.4) a subscription may name. */
/** `maintenance` is not a condition: a subscription naming it is told of maintenance notices (src/pipeline/maintenance.ts). */
export const ALARM_RULES = ['dead-letter', 'queue-depth', 'queue-age', 'delivery-latency', 'webhook-failing', 'certificate-expiring', 'copies-withheld', 'queue-damage', 'queue-halted', 'storage', 'coordination', 'clock-skew', 'dip-clock', 'node-lost', 'delivery-process', 'activity-log', 'mpan-holder-unreached', 'crl-stale', 'connections-exhausted', 'maintenance'] as const;
export type AlarmRule = (typeof ALARM_RULES)[number];
/** The rules whose conditions concern the DIP itself (participant null): a participant's portal does not offer them. */
export const OPERATOR_RULES: ReadonlySet<AlarmRule> = new Set<AlarmRule>(['queue-damage', 'queue-halted', 'storage', 'coordination', 'clock-skew', 'dip-clock', 'node-lost', 'delivery-process', 'activity-log', 'mpan-holder-unreached', 'crl-stale', 'connections-exhausted']);

/** A condition that holds now. `participant` is whom it concerns (null: the DIP itself, operators only). */
export interface AlarmCondition {
  /** Stable while the condition holds: the same key raised twice is one alarm. */
  key: string;
  rule: AlarmRule;
  participant: string | null;
  /** What holds, with its numbers as of the last evaluation that found it (they change while it holds). */
  summary: string;
  /** When it was first raised (kept while it holds). */
  since: number;
  /** The queue's channel, on the conditions a subscription may hold to a threshold of its own (THRESHOLD_RULES). */
  channel?: string;
  /**
   * Set when it holds against a subscription's own threshold, not the operator's: told to that subscription
   * only and listed to its owner only (a participant's threshold never adds to what the operator sees).
   */
  subscription?: { id: string; owner: string };
}

/**
 * A subscription's own thresholds (spec 5.11: each user configures its own alerting requirements), for the
 * rules where a number makes sense. Each replaces the operator's threshold for that subscription's notices
 * of its rule, on the queues its owner may see; absent, the operator's threshold applies as before.
 */
export interface AlarmThresholds {
  /** `queue-age`: the oldest undelivered message of one of its queues has waited longer than this. */
  queueAgeMinutes?: number;
  /** `delivery-latency`: a message was delivered more than this after its acceptance (not below the operator's: only those are watched). */
  deliveryLatencySeconds?: number;
  /** `dead-letter`: more than `count` of one queue's messages dead-lettered (and still dead) within the last `windowMinutes`. */
  deadLetters?: { count: number; windowMinutes: number };
  /** Only these channels' queues are held to the thresholds above, the others to the operator's. Absent: every channel. */
  channels?: string[];
}

export interface AlarmSubscription {
  id: string;
  /** `operator` (sees every alarm) or a participant's DIP ID (sees only alarms concerning it). */
  owner: string;
  rules: AlarmRule[];
  email: string | null;
  webhookUrl: string | null;
  createdAt: number;
  /** Its own thresholds; absent (every subscription made before them): the operator's. */
  thresholds?: AlarmThresholds;
}

export interface AlarmSubscriptionStore {
  list(owner?: string): Promise<AlarmSubscription[]>;
  put(s: AlarmSubscription): Promise<void>;
  /** Deletes the owner's subscription; false when it has none by that ID. */
  remove(owner: string, id: string): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * An alarm this node announced (sent as RAISED) and not yet resolved, kept across a restart: a condition
 * still holding after one keeps its `since` and is not announced again, and one that stopped holding
 * meanwhile is sent as RESOLVED. `announcedAt`: when its RAISED notice was sent; a RESOLVED goes only to
 * the subscriptions made by then (those told RAISED).
 */
export interface AnnouncedAlarm {
  condition: AlarmCondition;
  asOf: number;
  announcedAt: number;
}

/**
 * Where a node keeps the alarms it announced (`node`: its id in a cluster, '' in one process), beside the
 * subscriptions. Written when the set announced changes, read once at start.
 */
export interface AlarmMemory {
  recall(node: string): Promise<AnnouncedAlarm[]>;
  remember(node: string, announced: AnnouncedAlarm[]): Promise<void>;
}

/** One notice: an alarm raised or resolved. */
export interface AlarmNotice {
  kind: 'raised' | 'resolved';
  condition: AlarmCondition;
  at: number;
  /**
   * When the condition's summary (its numbers: dead letters, failed calls, minutes) was read: `at` for a
   * raised notice, the last evaluation that found it holding for a resolved one. A notice is read later
   * than it is sent; what holds now is what GET /admin/alarms answers.
   */
  asOf: number;
}

/** A maintenance notice published, amended or withdrawn, as a webhook receives it. */
export interface MaintenanceEvent {
  type: 'maintenance';
  kind: 'published' | 'amended' | 'withdrawn';
  notice: PublicNotice;
  at: number;
}

/**
 * Signs an alarm or maintenance notice over a string of its own (Signer.signNotice), never a delivery's: a
 * participant chooses where its notices go, and one signed as a delivery would verify at any recipient's
 * message webhook it pointed them at. A method name of its own, so a delivery signer cannot be passed for it.
 */
export interface NoticeSigner {
  signNotice(method: string, url: string, body: Buffer): Promise<Record<string, string>>;
}

/** Where notices go: e-mail (SMTP) and webhooks. */
export interface AlarmChannel {
  email(to: string, subject: string, text: string): Promise<void>;
  webhook(url: string, notice: AlarmNotice | MaintenanceEvent): Promise<void>;
  close(): Promise<void>;
}
