import type { AlarmCondition, AlarmRule, AlarmSubscription, AlarmThresholds } from '../ports/alarms.js';
import type { QueueRef } from '../ports/message-log.js';

/**
 * A subscription's own thresholds (spec 5.11, 5.11.4): pure, evaluated inside the operator's sources from
 * the same reading (the queues, the dead letters, the workers' late runs), so a threshold adds no read of
 * the store and nothing to a message's road; the conditions it raises go through the Alarms like any other
 * (raised once while they hold, resolved once, `maxNoticesPerHour` a subscription).
 */

/** Which rule each threshold is for. */
export const THRESHOLD_RULES = { queueAgeMinutes: 'queue-age', deliveryLatencySeconds: 'delivery-latency', deadLetters: 'dead-letter' } as const satisfies Record<Exclude<keyof AlarmThresholds, 'channels'>, AlarmRule>;
type ThresholdName = keyof typeof THRESHOLD_RULES;

/**
 * The bounds of a participant's numbers. Nothing here changes how often the DIP evaluates (every
 * evaluateIntervalMs, whatever the thresholds), but a threshold below a minute would have a queue in
 * ordinary traffic (messages waiting seconds for their webhook call) or a dead letter's requeue raise and
 * resolve at nearly every evaluation: a stream of e-mails the DIP sends (capped only by maxNoticesPerHour)
 * for what is no alarm. The upper bounds keep the numbers meaningful: a message waiting a week, or a
 * delivery a day late, is far past every operator threshold; a dead-letter window longer than a week counts
 * letters the operator has long been told of (the source reads at most 100,000 of them). 0 dead letters is
 * allowed: "tell me of any dead letter within the window".
 */
export const THRESHOLD_BOUNDS = {
  queueAgeMinutes: { minimum: 1, maximum: 7 * 24 * 60 },
  deliveryLatencySeconds: { minimum: 1, maximum: 24 * 3600 },
  deadLetterCount: { minimum: 0, maximum: 10_000 },
  deadLetterWindowMinutes: { minimum: 1, maximum: 7 * 24 * 60 },
  channels: 50,
} as const;

/** The thresholds in a subscription's body (the alarm routes' JSON schema, and the portal's form through it). */
export const thresholdsSchema = {
  type: 'object',
  additionalProperties: false,
  description: "The subscription's own thresholds, each for its rule (which the subscription must name); absent: the operator's",
  properties: {
    queueAgeMinutes: { type: 'integer', ...THRESHOLD_BOUNDS.queueAgeMinutes, description: 'queue-age: a message for one of your queues has waited undelivered longer than this many minutes' },
    deliveryLatencySeconds: { type: 'integer', ...THRESHOLD_BOUNDS.deliveryLatencySeconds, description: "delivery-latency: a message reached you more than this many seconds after its acceptance (not below the DIP's own threshold)" },
    deadLetters: {
      type: 'object',
      additionalProperties: false,
      required: ['count', 'windowMinutes'],
      description: 'dead-letter: more than `count` messages of one of your queues dead-lettered (and still dead) within the last `windowMinutes`',
      properties: { count: { type: 'integer', ...THRESHOLD_BOUNDS.deadLetterCount }, windowMinutes: { type: 'integer', ...THRESHOLD_BOUNDS.deadLetterWindowMinutes } },
    },
    channels: { type: 'array', minItems: 1, maxItems: THRESHOLD_BOUNDS.channels, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,40}$' }, description: 'Only these channels are held to the thresholds above, the others to the operator\'s' },
  },
} as const;

/**
 * What the schema cannot say about a subscription's thresholds, or null: each is for a rule the
 * subscription names, at least one is given, and a delivery latency is not below the operator's (the
 * workers record only deliveries later than it: a lower one could not be watched without a check on every
 * message's delivery).
 */
export function thresholdsRefused(rules: readonly AlarmRule[], t: AlarmThresholds, latencyFloorSeconds?: number): string | null {
  const given = (Object.keys(THRESHOLD_RULES) as ThresholdName[]).filter((k) => t[k] !== undefined);
  if (given.length === 0) return 'thresholds: give queueAgeMinutes, deliveryLatencySeconds or deadLetters (channels only narrows them)';
  const unnamed = given.find((k) => !rules.includes(THRESHOLD_RULES[k]));
  if (unnamed !== undefined) return `thresholds.${unnamed}: the subscription does not name ${THRESHOLD_RULES[unnamed]}`;
  if (t.deliveryLatencySeconds !== undefined && latencyFloorSeconds !== undefined && t.deliveryLatencySeconds < latencyFloorSeconds) {
    return `thresholds.deliveryLatencySeconds: at least ${latencyFloorSeconds} s, the DIP's own delivery latency threshold (below it no delivery is watched)`;
  }
  return null;
}

/** Whether a subscription's owner may see a condition: operators all, a participant only its own. */
export const maySee = (owner: string, c: Pick<AlarmCondition, 'participant'>): boolean => owner === 'operator' || c.participant === owner;

/** Whether `s` holds `rule` to a threshold of its own on `channel` (then the operator's condition is not sent to it). */
function ownThreshold(s: AlarmSubscription, rule: AlarmRule, channel: string | undefined): boolean {
  const t = s.thresholds;
  if (!t) return false;
  const name = (Object.keys(THRESHOLD_RULES) as ThresholdName[]).find((k) => THRESHOLD_RULES[k] === rule);
  return name !== undefined && t[name] !== undefined && (t.channels === undefined || (channel !== undefined && t.channels.includes(channel)));
}

/**
 * Whether a notice of `c` goes to `s`: a condition raised against a subscription's threshold to that
 * subscription alone; an operator's condition to every subscription that names its rule and may see it,
 * except one holding that rule to its own threshold on that channel (told by its own conditions instead).
 */
export function receives(s: AlarmSubscription, c: AlarmCondition): boolean {
  if (c.subscription) return c.subscription.id === s.id;
  return s.rules.includes(c.rule) && maySee(s.owner, c) && !ownThreshold(s, c.rule, c.channel);
}

/** Whether `owner` lists `c`: a subscription's threshold condition to that subscription's owner only. */
export const lists = (owner: string, c: AlarmCondition): boolean => (c.subscription ? c.subscription.owner === owner : maySee(owner, c));

/**
 * The watched subscriptions by owner, made once per list (each evaluation's): a queue is matched against
 * its recipient's and the operator's alone, so an evaluation costs the queues plus the subscriptions, not
 * their product (a thousand participants' subscriptions over ten thousand queues).
 */
const byOwner = new WeakMap<readonly AlarmSubscription[], Map<string, AlarmSubscription[]>>();
function ownersOf(watched: readonly AlarmSubscription[]): Map<string, AlarmSubscription[]> {
  let index = byOwner.get(watched);
  if (!index) {
    index = new Map();
    for (const s of watched) index.set(s.owner, [...(index.get(s.owner) ?? []), s]);
    byOwner.set(watched, index);
  }
  return index;
}

/** The subscriptions holding `name`'s rule to a number of their own for `queue` (the operator's and its recipient's), with that number. */
export function holders<K extends ThresholdName>(watched: readonly AlarmSubscription[], name: K, queue: QueueRef): Array<{ s: AlarmSubscription; value: NonNullable<AlarmThresholds[K]> }> {
  if (watched.length === 0) return [];
  const index = ownersOf(watched);
  const out: Array<{ s: AlarmSubscription; value: NonNullable<AlarmThresholds[K]> }> = [];
  for (const s of [...(index.get('operator') ?? []), ...(queue.recipientDipId === 'operator' ? [] : (index.get(queue.recipientDipId) ?? []))]) {
    const value = s.thresholds?.[name];
    if (value === undefined || !s.rules.includes(THRESHOLD_RULES[name]) || !ownThreshold(s, THRESHOLD_RULES[name], queue.channel)) continue;
    out.push({ s, value });
  }
  return out;
}

/** A condition holding against `s`'s own threshold for `queue`: its summary names whose threshold held, and the operator's. */
export function thresholdCondition(rule: AlarmRule, queue: QueueRef, s: AlarmSubscription, what: string, operators: string, since: number): AlarmCondition {
  const q = `${queue.recipientDipId}/${queue.channel}`;
  return {
    key: `${rule}:${q}@subscription:${s.id}`,
    rule,
    participant: queue.recipientDipId,
    summary: `${what}: the threshold of ${s.owner}'s subscription ${s.id} (the DIP's own: ${operators})`,
    since,
    channel: queue.channel,
    subscription: { id: s.id, owner: s.owner },
  };
}

/** Thresholds in words (`only`: that rule's alone, with the channels): a notice's line, a portal's table. */
export function describeThresholds(t: AlarmThresholds, only?: AlarmRule): string {
  const parts = [
    t.queueAgeMinutes === undefined ? null : ['queue-age', `queue-age: ${t.queueAgeMinutes} min`],
    t.deliveryLatencySeconds === undefined ? null : ['delivery-latency', `delivery-latency: ${t.deliveryLatencySeconds} s`],
    t.deadLetters === undefined ? null : ['dead-letter', `dead-letter: more than ${t.deadLetters.count} in ${t.deadLetters.windowMinutes} min`],
  ].flatMap((p) => (p === null || (only !== undefined && p[0] !== only) ? [] : [p[1]!]));
  return [...parts, ...(t.channels ? [`channels ${t.channels.join(', ')}`] : [])].join('; ');
}

/** The threshold a condition held against, as a notice's line says it. */
export function thresholdLine(c: AlarmCondition, s: AlarmSubscription): string | null {
  if (!c.subscription || !s.thresholds) return null;
  return `threshold: ${s.owner}'s subscription ${s.id} (${describeThresholds(s.thresholds, c.rule)})`;
}
