import { Ajv } from 'ajv';
import { randomUUID } from 'node:crypto';
import { ALARM_RULES, type AlarmChannel, type AlarmMemory, type AnnouncedAlarm, type AlarmCondition, type AlarmNotice, type AlarmRule, type AlarmSubscription, type AlarmSubscriptionStore, type AlarmThresholds } from '../ports/alarms.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { AlarmNotifierLease, NotifiedAlarm } from '../ports/leases.js';
import type { Logger } from '../ports/logger.js';
import { alarmAction, alarmSeverity } from './alarm-actions.js';
import { lists, receives, thresholdLine, thresholdsRefused, thresholdsSchema } from './alarm-thresholds.js';
import { alarmScope, type RecipientConfirmation } from './mail-recipients.js';
import { utcAndUk } from '../domain/uk-time.js';
import { plainHttpProblem } from '../domain/callback-url.js';

/**
 * A source of conditions: each returns those that hold now. `watched`: the subscriptions with thresholds of
 * their own (src/pipeline/alarm-thresholds.ts), judged by the sources of their rules from the same reading.
 */
export type ConditionSource = (watched?: readonly AlarmSubscription[]) => Promise<AlarmCondition[]> | AlarmCondition[];

export interface AlarmSettings {
  evaluateIntervalMs: number;
  /** Notices per subscription per hour beyond which they are dropped (and counted), so a flapping condition cannot flood a mailbox. */
  maxNoticesPerHour: number;
}

/** Notices kept while no subscription list was ever read (the oldest are dropped past it). */
const UNSENT_LIMIT = 1000;
/** Resolved alarms kept for the operator portal's "recently resolved" (the oldest are dropped past it). */
const RESOLVED_LIMIT = 50;
/**
 * How often an evaluation reads the subscriptions for their thresholds (else it reads them only when it
 * has a notice to send): once a minute, whatever the evaluation interval, so thresholds add at most one
 * read of the store a minute per node, and a new subscription's thresholds hold from within a minute.
 */
export const THRESHOLDS_READ_MS = 60_000;

/**
 * A notice on its way, with when its alarm's RAISED was sent (a RESOLVED's): it goes only to the
 * subscriptions made by then, which were told RAISED (one made since never heard of it).
 */
type Due = AlarmNotice & { announcedAt?: number };

/**
 * An alarm e-mail's subject: short enough for a mailbox's list (a summary runs to 300 characters, and is
 * the body's first line): the rule, its severity and whom it concerns.
 */
export function alarmSubject(n: Pick<AlarmNotice, 'kind' | 'condition'>): string {
  const c = n.condition;
  const scope = c.participant === null ? 'the DIP' : c.channel === undefined ? c.participant : `${c.participant} / ${c.channel}`;
  return `[DIP alarm ${n.kind.toUpperCase()}] ${c.rule} (${alarmSeverity(c)}): ${scope}`;
}

/** An alarm that stopped holding: its condition as last read while it held, and when this node found it gone. */
export interface ResolvedAlarm {
  condition: AlarmCondition;
  resolvedAt: number;
}

/**
 * The rules whose conditions are read from what every node of a cluster shares (the store's dead letters
 * and queues, the certificates), so every node finds them alike: in a cluster only the notifier lease's
 * holder sends their notices. The others (a webhook failing on the queue this node works, this node's own
 * storage and coordination health) are seen by one node alone, and that node sends them.
 */
export const SHARED_RULES: ReadonlySet<AlarmRule> = new Set<AlarmRule>(['dead-letter', 'queue-depth', 'queue-age', 'queue-damage', 'certificate-expiring']);

/**
 * Whether a condition is one every node finds alike (see SHARED_RULES). A certificate alarm is shared only
 * when it is about a participant's registered certificate: the DIP's own (CA, TLS, signing, trusted CAs)
 * are read from each node's files, which a rolling renewal can leave different for a while, so each node
 * reports its own (else one node's expiring file was never notified, or a takeover "resolved" it).
 */
export const isSharedCondition = (c: AlarmCondition): boolean => SHARED_RULES.has(c.rule) && !(c.rule === 'certificate-expiring' && c.participant === null);

/**
 * Alarms (spec 5.11.4): every interval the sources say which conditions hold; a condition that starts
 * to hold is raised, one that stops is resolved, and each change is sent to the subscriptions that name
 * its rule and may see it, by e-mail and webhook. Conditions are derived from state (dead letters still
 * dead, a queue's depth, a worker's failures, certificates, storage health), so a restart re-raises what
 * still holds rather than forgetting it.
 */
export class Alarms {
  private active = new Map<string, AlarmCondition>();
  /** When each active condition's summary was read: the last pass whose source answered with it. */
  private readAt = new Map<string, number>();
  /** The keys each source (by its index) said held at the last pass it answered. */
  private bySource: Array<Set<string>> = [];
  /** The subscriptions as last read: notices still go out while the store that keeps them cannot be read. */
  private known: AlarmSubscription[] | null = null;
  /** When an evaluation last read the subscriptions for their thresholds (THRESHOLDS_READ_MS). */
  private watchedReadAt = -Infinity;
  /** Notices made while no subscription list was ever read: sent once one is (a bounded backlog). */
  private unsent: Due[] = [];
  /** When each alarm this node announced (sent RAISED) was announced: its RESOLVED goes to the subscriptions made by then. */
  private readonly announcedAt = new Map<string, number>();
  /** Whether the alarms announced before a restart were read back (AlarmMemory): once, at the first pass. */
  private recalledOnce = false;
  /** Alarms read back from before a restart, kept until every source has answered once (not resolved by a source that has not). */
  private recalled = new Set<string>();
  /** What was last written to the memory (its keys, when raised and announced), so it is written only on a change. */
  private remembered = '';
  private cancel: Cancel | null = null;
  private running: Promise<void> | null = null;
  /** The shared conditions' turn under way (in a cluster): at most one at a time, apart from the evaluations. */
  private sharing: Promise<void> | null = null;
  private readonly sent = new Map<string, number[]>();
  /** The alarms this node saw resolve, newest last (bounded): what an operator on call asks after "what just cleared?". */
  private resolvedLog: ResolvedAlarm[] = [];
  /** Notices dropped by the rate limit. */
  suppressed = 0;

  constructor(
    private readonly sources: ConditionSource[],
    private readonly subscriptions: Pick<AlarmSubscriptionStore, 'list'>,
    private readonly channel: AlarmChannel,
    private readonly settings: AlarmSettings,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** In a cluster: which node sends the notices of shared conditions (absent: this node sends every notice). */
    private readonly notifier?: AlarmNotifierLease,
    /**
     * A participant's subscription e-mails only an address that agreed (RecipientConfirmation, scope
     * alarmScope(owner)): else any participant could have the DIP mail a third party's mailbox. The
     * operator's own (owner `operator`) count as agreed. Absent: no e-mail goes to a participant's address.
     */
    private readonly recipients?: Pick<RecipientConfirmation, 'confirmed' | 'ask'>,
    /**
     * Where this node keeps the alarms it announced across a restart (absent: in memory only, and a restart
     * announces again what still holds, with a new `since`). `node`: this node's id, '' in one process.
     */
    private readonly memory?: { store: AlarmMemory; node: string },
  ) {}

  start(): void {
    // A pass that fails must not end the process (an unhandled rejection): it is logged, and the next one runs.
    this.cancel = this.clock.every(this.settings.evaluateIntervalMs, () => void this.evaluate().catch((err: unknown) => this.logger.error({ err }, 'an alarm evaluation failed; the next one runs at its interval')));
  }

  async stop(): Promise<void> {
    this.cancel?.();
    await this.running;
    await this.sharing;
  }

  /**
   * A subscription was put or removed on this node: the next evaluation reads the subscriptions for their
   * thresholds (another node's change is read within THRESHOLDS_READ_MS).
   */
  subscriptionsChanged(): void {
    this.watchedReadAt = -Infinity;
  }

  /** The alarms raised and not yet resolved that `owner` may see. */
  current(owner = 'operator'): AlarmCondition[] {
    return [...this.active.values()].filter((c) => lists(owner, c));
  }

  /**
   * The alarms this node saw resolve since it started that `owner` may see, newest first (the last 50).
   * Kept in memory: every node evaluates every condition, so each keeps its own view; a restart empties it.
   */
  resolved(owner = 'operator'): ResolvedAlarm[] {
    return this.resolvedLog.filter((r) => lists(owner, r.condition)).reverse();
  }

  /**
   * One evaluation (overlapping calls share one), and then the shared conditions' turn it started or one
   * still under way. The evaluation itself never waits for that turn: it asks NATS for the notifier lease,
   * and while NATS does not answer (a turn may wait for as long), this node's own conditions (the
   * `coordination` alarm about NATS itself first) must still be listed and sent at every interval.
   */
  async evaluate(): Promise<void> {
    this.running ??= this.pass().finally(() => {
      this.running = null;
    });
    await this.running;
    await this.sharing;
  }

  private async pass(): Promise<void> {
    const now = new Map<string, AlarmCondition>();
    const readAt = new Map<string, number>();
    const at = this.clock.now();
    if (!this.recalledOnce) await this.recall();
    if (at - this.watchedReadAt >= THRESHOLDS_READ_MS) {
      this.watchedReadAt = at;
      await this.subscribers(true);
    }
    const watched = (this.known ?? []).filter((s) => s.thresholds !== undefined);
    // Each source on its own: one that cannot answer (most read the store) keeps its own alarms as they
    // were rather than resolving them falsely, and does not stop the others: the storage alarm must be
    // raised exactly when the store-reading sources fail.
    for (const [i, source] of this.sources.entries()) {
      try {
        const keys = new Set<string>();
        for (const c of await source(watched)) {
          // The summary as read now (an operator on call reads GET /admin/alarms long after the raise:
          // "3 dead letters" must not stay 3 while 250 pile up); when it was first raised is kept.
          const raised = this.active.get(c.key);
          now.set(c.key, raised ? { ...c, since: raised.since } : c);
          readAt.set(c.key, at);
          keys.add(c.key);
        }
        this.bySource[i] = keys;
      } catch (err) {
        this.logger.error({ err, source: i }, 'an alarm source failed; its alarms are left as they were');
        for (const key of this.bySource[i] ?? []) {
          const kept = this.active.get(key);
          if (kept) {
            now.set(key, kept);
            readAt.set(key, this.readAt.get(key) ?? at);
          }
        }
      }
    }
    // An alarm announced before a restart whose source has not answered yet (failed, or its first pass is
    // to come) is kept as it was: resolved only once every source has said it no longer holds.
    if (this.recalled.size > 0) {
      const unanswered = this.sources.some((_, i) => this.bySource[i] === undefined);
      for (const key of this.recalled) {
        const kept = this.active.get(key);
        if (unanswered && kept && !now.has(key)) {
          now.set(key, kept);
          readAt.set(key, this.readAt.get(key) ?? at);
        }
      }
      if (!unanswered) this.recalled.clear();
    }
    const before = this.active;
    const readBefore = this.readAt;
    this.active = now;
    this.readAt = readAt;
    // Every condition that stopped holding, shared or not: the list is this node's view, not a notice.
    for (const [key, c] of before) if (!now.has(key)) this.resolvedLog.push({ condition: c, resolvedAt: at });
    this.resolvedLog = this.resolvedLog.slice(-RESOLVED_LIMIT);
    // Every change this node saw, or in a cluster those of its own conditions and (while it holds the
    // notifier lease) the shared ones: each node's diff of its own view would tell a subscriber once per node.
    const own = (c: AlarmCondition): boolean => !this.notifier || !isSharedCondition(c);
    const notices: Due[] = [];
    for (const [key, c] of now) {
      if (!own(c) || before.has(key)) continue;
      notices.push({ kind: 'raised', condition: c, at, asOf: readAt.get(key) ?? at });
      this.announcedAt.set(key, at);
    }
    // A resolved condition's summary is the last one read while it held: the notice says from when.
    for (const [key, c] of before) {
      if (!own(c) || now.has(key)) continue;
      const announcedAt = this.announcedAt.get(key);
      notices.push({ kind: 'resolved', condition: c, at, asOf: readBefore.get(key) ?? at, ...(announcedAt === undefined ? {} : { announcedAt }) });
      this.announcedAt.delete(key);
    }
    await this.notify(notices);
    await this.remember(own);
    // The shared conditions' turn, apart: skipped while the one before still waits for NATS (the next
    // evaluation after it compares against the lease's record, so no change is lost by skipping).
    const notifier = this.notifier;
    if (notifier && this.sharing === null) {
      this.sharing = this.shareTurn(notifier, before, readBefore, at)
        .catch((err: unknown) => this.logger.error({ err }, 'the shared alarm notices could not be sent; the next evaluation tries again'))
        .finally(() => {
          this.sharing = null;
        });
    }
  }

  /** Logs the notices and sends each to the subscriptions that name its rule and may see it (or keeps them until a list is read). */
  private async notify(notices: Due[]): Promise<void> {
    for (const n of notices) this.logger.warn({ alarm: n.condition.key, rule: n.condition.rule, kind: n.kind }, `alarm ${n.kind}: ${n.condition.summary}`);
    const subs = await this.subscribers(notices.length > 0 || this.unsent.length > 0);
    if (subs === null) {
      this.unsent = [...this.unsent, ...notices].slice(-UNSENT_LIMIT);
      return;
    }
    const due = [...this.unsent, ...notices];
    this.unsent = [];
    for (const n of due) {
      for (const s of subs) if (receives(s, n.condition) && toldRaised(s, n)) await this.send(s, n);
    }
  }

  /** Sends the shared conditions' changes when this node holds the notifier lease, then records them in it. */
  private async shareTurn(notifier: AlarmNotifierLease, before: Map<string, AlarmCondition>, readBefore: Map<string, number>, at: number): Promise<void> {
    const shared = await this.sharedChanges(notifier, before, readBefore, at);
    if (!shared || shared.notices.length === 0) return;
    await this.notify(shared.notices);
    // Recorded after sending (or keeping them in the backlog): a holder that dies in between leaves its
    // successor to send them again (a duplicate), never to take them as sent.
    if (!(await shared.lease.record(shared.notified))) {
      this.logger.warn({ notices: shared.notices.length }, 'the alarm notifier lease was taken over while notices were sent: the new holder may send them again');
    }
  }

  /**
   * The changes of shared conditions to send, when this node holds the notifier lease: what holds now
   * against what the lease's holders (this node or one before it) have notified, so a change seen
   * while another node held it, and not sent by that node before it died, is sent now. Null while another
   * node holds the lease, and while a source has never answered on this node (its conditions are unknown,
   * not resolved).
   */
  private async sharedChanges(lease: AlarmNotifierLease, before: Map<string, AlarmCondition>, readBefore: Map<string, number>, at: number): Promise<{ lease: AlarmNotifierLease; notices: AlarmNotice[]; notified: Map<string, NotifiedAlarm> } | null> {
    if (this.sources.some((_, i) => this.bySource[i] === undefined)) return null;
    const told = await lease.turn();
    if (told === null) return null;
    const notices: Due[] = [];
    const notified = new Map<string, NotifiedAlarm>();
    for (const [key, c] of this.active) {
      if (!isSharedCondition(c)) continue;
      const was = told.get(key);
      if (was) {
        notified.set(key, was);
        // Raised before this node (re)started: it keeps when it was first raised.
        if (was.condition.since < c.since) this.active.set(key, { ...c, since: was.condition.since });
      } else {
        const n: AlarmNotice = { kind: 'raised', condition: c, at, asOf: this.readAt.get(key) ?? at };
        notices.push(n);
        notified.set(key, { condition: c, asOf: n.asOf });
      }
    }
    for (const [key, was] of told) {
      if (this.active.has(key)) continue;
      // The last summary this node read while it held, else the one last notified.
      const last = before.get(key);
      // The notifier's record says when RAISED was read and sent (its asOf).
      notices.push(last ? { kind: 'resolved', condition: last, at, asOf: readBefore.get(key) ?? at, announcedAt: was.asOf } : { kind: 'resolved', condition: was.condition, at, asOf: was.asOf, announcedAt: was.asOf });
    }
    return { lease, notices, notified };
  }

  /**
   * The subscriptions, read afresh when there is something to send: the last list read when the store
   * cannot be (in a cluster it is the database that may be down: that is when a notice matters most);
   * null when none was ever read.
   */
  private async subscribers(needed: boolean): Promise<AlarmSubscription[] | null> {
    if (!needed) return this.known;
    try {
      this.known = await this.subscriptions.list();
    } catch (err) {
      this.logger.error({ err, using: this.known === null ? 'none yet: the notices wait' : `the ${this.known.length} read before` }, 'alarm subscriptions could not be read');
    }
    return this.known;
  }

  private mayEmail(s: AlarmSubscription, email: string): Promise<boolean> {
    return mayEmailOf(this.recipients, s, email, this.logger);
  }

  /** Reads back the alarms this node announced before it (re)started: they stay raised, with their `since`, and are not announced again. */
  private async recall(): Promise<void> {
    this.recalledOnce = true;
    if (!this.memory) return;
    try {
      for (const a of await this.memory.store.recall(this.memory.node)) {
        this.active.set(a.condition.key, a.condition);
        this.readAt.set(a.condition.key, a.asOf);
        this.announcedAt.set(a.condition.key, a.announcedAt);
        this.recalled.add(a.condition.key);
      }
    } catch (err) {
      this.logger.error({ err }, 'the alarms announced before this start could not be read: those still holding are announced again');
    }
  }

  /** Writes the alarms this node has announced and not resolved, when that set changed (a failure is logged, and the next pass tries again). */
  private async remember(own: (c: AlarmCondition) => boolean): Promise<void> {
    if (!this.memory) return;
    const announced: AnnouncedAlarm[] = [];
    for (const [key, c] of this.active) {
      const announcedAt = this.announcedAt.get(key);
      if (own(c) && announcedAt !== undefined) announced.push({ condition: c, asOf: this.readAt.get(key) ?? announcedAt, announcedAt });
    }
    const signature = JSON.stringify(announced.map((a) => [a.condition.key, a.condition.since, a.announcedAt]).sort());
    if (signature === this.remembered) return;
    try {
      await this.memory.store.remember(this.memory.node, announced);
      this.remembered = signature;
    } catch (err) {
      this.logger.error({ err }, 'the alarms announced could not be written: a restart may announce them again');
    }
  }

  private async send(s: AlarmSubscription, due: Due): Promise<void> {
    const { announcedAt: _announcedAt, ...n } = due;
    const hourAgo = n.at - 3_600_000;
    const recent = (this.sent.get(s.id) ?? []).filter((t) => t > hourAgo);
    if (recent.length >= this.settings.maxNoticesPerHour) {
      this.suppressed += 1;
      return;
    }
    recent.push(n.at);
    this.sent.set(s.id, recent);
    const subject = alarmSubject(n);
    const text = [
      `Alarm ${n.kind}: ${n.condition.summary}`,
      `rule: ${n.condition.rule}`,
      `key: ${n.condition.key}`,
      `since: ${utcAndUk(n.condition.since)}`,
      thresholdLine(n.condition, s) ?? '',
      n.kind === 'raised' ? `what to do: ${alarmAction(n.condition, s.owner)}` : '',
      n.kind === 'resolved' ? `resolved: ${utcAndUk(n.at)}` : '',
      // Read in a mailbox later than it was sent: the numbers above are from then, not now.
      n.kind === 'raised'
        ? `as of: ${utcAndUk(n.asOf)} (GET /admin/alarms, or /observability/alarms, shows what holds now)`
        : `as of: ${utcAndUk(n.asOf)} (the last evaluation that found it holding)`,
    ].filter(Boolean).join('\n');
    try {
      if (s.email && (await this.mayEmail(s, s.email))) await this.channel.email(s.email, subject, `${text}\n`);
      if (s.webhookUrl) await this.channel.webhook(s.webhookUrl, n);
    } catch (err) {
      this.logger.error({ err, subscription: s.id, alarm: n.condition.key }, 'an alarm notice could not be sent');
    }
  }
}

/**
 * Whether a subscription's notices may be e-mailed: the operator's always; a participant's once its address
 * confirmed. One not confirmed is asked now (one confirmation e-mail, none while one is open), so that a
 * subscription made before confirmations (upgrade) is asked at its first notice, which is not sent.
 */
async function mayEmailOf(recipients: Pick<RecipientConfirmation, 'confirmed' | 'ask'> | undefined, s: AlarmSubscription, email: string, logger: Logger): Promise<boolean> {
  if (s.owner === 'operator') return true;
  if (!recipients) return false;
  const scope = alarmScope(s.owner);
  if (await recipients.confirmed(scope, email)) return true;
  const asked = await recipients.ask(scope, email, 'alarm notices');
  logger.info({ subscription: s.id, owner: s.owner, confirmation: asked }, "an alarm notice not e-mailed: the subscription's address has not confirmed yet");
  return false;
}

/**
 * Whether `s` is to be sent `n`: every RAISED it names, and a RESOLVED only when it was made by the time
 * the alarm's RAISED was sent (so was told it), never the end of an alarm it never heard of. One made
 * while an alarm holds hears of it from the next one (and reads it in GET /admin/alarms meanwhile).
 */
const toldRaised = (s: AlarmSubscription, n: Due): boolean => n.kind === 'raised' || n.announcedAt === undefined || s.createdAt <= n.announcedAt;

export interface SubscriptionInput {
  rules: AlarmRule[];
  email?: string | null;
  webhookUrl?: string | null;
  thresholds?: AlarmThresholds;
}

/**
 * A new subscription of `owner`'s; at least one way to be told is required, and its thresholds must be for
 * rules it names (`latencyFloorSeconds`: the operator's delivery latency threshold, below which none is watched).
 */
export function newSubscription(owner: string, input: SubscriptionInput, now: number, latencyFloorSeconds?: number): AlarmSubscription | { error: string } {
  const email = input.email ?? null;
  const webhookUrl = input.webhookUrl ?? null;
  if (email === null && webhookUrl === null) return { error: 'give email, webhookUrl or both: where the notices go' };
  const rules = [...new Set(input.rules)];
  const refused = input.thresholds ? thresholdsRefused(rules, input.thresholds, latencyFloorSeconds) : null;
  if (refused !== null) return { error: refused };
  return { id: randomUUID(), owner, rules, email, webhookUrl, createdAt: now, ...(input.thresholds ? { thresholds: input.thresholds } : {}) };
}

/** A subscription's body, as the alarm routes take it (their JSON schema) and the portal's form is checked. */
export const subscriptionBody = {
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  properties: {
    rules: { type: 'array', minItems: 1, maxItems: ALARM_RULES.length, items: { type: 'string', enum: [...ALARM_RULES] } },
    email: { type: ['string', 'null'], minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' },
    webhookUrl: { type: ['string', 'null'], maxLength: 2048, pattern: '^https?://' },
    thresholds: thresholdsSchema,
  },
} as const;

/**
 * The most alarm subscriptions one participant may hold. Each is a mailbox or a URL that every notice it
 * names goes to (up to `maxNoticesPerHour` each), and a participant can raise some of its own alarms at will
 * (a failing webhook, a queue left unread): without a cap one participant could subscribe a third party's
 * mailbox or server thousands of times and have the DIP flood it, and spend the DIP's mail allowance.
 * The operator's own subscriptions (owner `operator`) are not capped.
 */
export const MAX_SUBSCRIPTIONS_PER_PARTICIPANT = 10;

/** Creations under way per owner in this process: one at a time, so a burst cannot all count the same list. */
const creating = new Map<string, Promise<unknown>>();

/** What creating a subscription needs: where it is kept, the webhook destination rules, the time. */
export interface SubscriptionDeps {
  /** The DIP's environment: outside DEV a webhook URL must be https, as a message webhook's must. */
  environment: string;
  subscriptions: Pick<AlarmSubscriptionStore, 'put' | 'list'>;
  /** Refuses webhook URLs on internal networks (outside DEV), as for message webhooks. */
  checkUrl(url: string): Promise<string | null>;
  now(): number;
  /** The operator's delivery latency threshold (observability.alarms.deliveryLatencySeconds): a subscription's may not be lower. */
  deliveryLatencyFloorSeconds?: number;
}

const checkBody = new Ajv({ allErrors: false, strict: false }).compile<SubscriptionInput>(subscriptionBody);

/**
 * Creating a subscription, the same for an operator, a participant and a participant's user in the portal:
 * the body is checked against the routes' schema (a form has not been through Fastify's), where the notices
 * go is checked (a webhook URL must pass the destination rules), then it is stored under its owner.
 */
export async function createSubscription(deps: SubscriptionDeps, owner: string, input: unknown): Promise<{ ok: true; subscription: AlarmSubscription } | { ok: false; help: string }> {
  if (!checkBody(input)) {
    const e = checkBody.errors?.[0];
    return { ok: false, help: e ? `${e.instancePath.replace(/^\//, '').replace(/\//g, '.') || 'body'} ${e.message ?? 'is not valid'}${e.params && 'allowedValues' in e.params ? `: ${(e.params.allowedValues as string[]).join(', ')}` : ''}` : 'the subscription is not valid' };
  }
  const made = newSubscription(owner, input, deps.now(), deps.deliveryLatencyFloorSeconds);
  if ('error' in made) return { ok: false, help: made.error };
  if (made.webhookUrl) {
    const plain = plainHttpProblem('webhookUrl', made.webhookUrl, deps.environment);
    if (plain) return { ok: false, help: plain };
    const refused = await deps.checkUrl(made.webhookUrl);
    if (refused !== null) return { ok: false, help: `webhookUrl: ${refused}` };
  }
  if (owner === 'operator') {
    await deps.subscriptions.put(made);
    return { ok: true, subscription: made };
  }
  // Counted and stored one at a time per owner (in this process; nodes of a cluster may each let one more
  // through at the same instant, which keeps the cap's purpose).
  const before = creating.get(owner) ?? Promise.resolve();
  const turn = before.then(async (): Promise<{ ok: true; subscription: AlarmSubscription } | { ok: false; help: string }> => {
    const held = (await deps.subscriptions.list(owner)).length;
    if (held >= MAX_SUBSCRIPTIONS_PER_PARTICIPANT) {
      return { ok: false, help: `${owner} has ${held} alarm subscriptions, and a participant may hold at most ${MAX_SUBSCRIPTIONS_PER_PARTICIPANT} alarm subscriptions: remove one first (one subscription takes several rules, an e-mail address and a webhook URL)` };
    }
    await deps.subscriptions.put(made);
    return { ok: true, subscription: made };
  });
  const settled = turn.catch(() => undefined);
  creating.set(owner, settled);
  void settled.then(() => {
    if (creating.get(owner) === settled) creating.delete(owner);
  });
  return turn;
}

