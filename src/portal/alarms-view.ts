import { withShownWebhook } from '../domain/url-secrets.js';
import { alarmSeverity } from '../pipeline/alarm-actions.js';
import { describeThresholds, THRESHOLD_BOUNDS } from '../pipeline/alarm-thresholds.js';
import type { AlarmCondition, AlarmRule, AlarmSubscription, AlarmThresholds } from '../ports/alarms.js';
import { actionButton, badge, choice, html, input, isoOrDash, table, type Html } from './html.js';

/** Each rule as a subscription form offers it, in the words of the one told (a participant: "us"; the operator's, OPERATOR_LABELS). */
export const RULE_LABELS: Record<AlarmRule, string> = {
  'dead-letter': 'Dead letters: a message to us could not be delivered',
  'queue-depth': 'Queue depth: messages for us are piling up',
  'queue-age': 'Queue age: messages for us have waited too long undelivered',
  'delivery-latency': 'Delivery latency: messages reached us later than the threshold after acceptance',
  'webhook-failing': 'Webhook failing: our webhook keeps refusing or not answering',
  'certificate-expiring': 'Certificate expiring: our registered certificate is close to expiry',
  'copies-withheld': 'Copies withheld: our registered certificate is revoked or expired, so encrypted messages for us wait',
  // These never concern a participant (OPERATOR_RULES): offered to operators only.
  'queue-damage': 'Queue damage: a queue entry refers to a message the store does not have',
  'queue-halted': 'Queue halted: a permanent storage error stopped delivery from a queue',
  storage: 'Storage: the DIP cannot take writes',
  coordination: 'Coordination: the DIP nodes cannot claim queues, nothing is delivered',
  'clock-skew': "Clock skew: a DIP node's clock disagrees with this node's beyond the lease allowance",
  'dip-clock': "DIP clock: this node's own clock looks wrong, the signatures of participants are refused for their date",
  'node-lost': 'Node lost: a DIP node stopped saying its roll call without stopping',
  'delivery-process': 'Delivery process: one keeps dying or hanging, its queues wait',
  'activity-log': 'Activity log: audit records cannot be written and wait in memory',
  'mpan-holder-unreached': 'MPAN lookup: a holder it names cannot receive and got no copy',
  'crl-stale': "CRL: an external CA's revocation list is (nearly) out of date; past it that CA's certificates are refused",
  'connections-exhausted': 'Connections exhausted: a listener refuses new connections (its cap reached, or out of file descriptors)',
  maintenance: 'Maintenance: a window is announced, changed or withdrawn',
};

/** The rules that concern a participant, as the operator's form offers them: about any participant, not "us". */
const OPERATOR_LABELS: Partial<Record<AlarmRule, string>> = {
  'dead-letter': "Dead letters: a message could not be delivered to a participant",
  'queue-depth': "Queue depth: messages for a participant are piling up",
  'queue-age': "Queue age: messages for a participant have waited too long undelivered",
  'delivery-latency': "Delivery latency: messages reached a participant later than the threshold after acceptance",
  'webhook-failing': "Webhook failing: a participant's webhook keeps refusing or not answering",
  'certificate-expiring': "Certificate expiring: a participant's registered certificate, or one of the DIP's own, is close to expiry",
  'copies-withheld': "Copies withheld: a participant's registered certificate is revoked or expired, so encrypted messages for it wait",
};

/** A rule's label for `owner`'s form: the operator's words, or the participant's. */
export const ruleLabel = (rule: AlarmRule, owner: string): string => (owner === 'operator' ? OPERATOR_LABELS[rule] : undefined) ?? RULE_LABELS[rule];

/** An alarm's severity as a badge: the word is there, not only the colour. */
export const severityBadge = (c: Pick<AlarmCondition, 'rule' | 'key'>): Html => (alarmSeverity(c) === 'critical' ? badge('bad', 'critical') : badge('warn', 'warning'));

/** Critical first, then the oldest: what has waited longest for someone on call. */
export const byUrgency = (a: Pick<AlarmCondition, 'rule' | 'key' | 'since'>, b: Pick<AlarmCondition, 'rule' | 'key' | 'since'>): number =>
  Number(alarmSeverity(b) === 'critical') - Number(alarmSeverity(a) === 'critical') || a.since - b.since;

/** Subscriptions as rows, each with its own remove button (the CSRF token and the subscription's ID). */
/** `o.action`: where a subscription is removed; null: no button (a user whose level may not). */
export function subscriptionRows(subs: readonly AlarmSubscription[], o: { action: string | null; csrf: string; owner: boolean }): Html[] {
  return subs.map(withShownWebhook).map(
    (s) =>
      html`<tr>${o.owner ? html`<td>${s.owner}</td>` : ''}<td>${s.rules.join(', ')}</td><td>${s.thresholds ? describeThresholds(s.thresholds) : "the DIP's"}</td><td>${s.email ?? '—'}</td><td>${s.webhookUrl ? html`<code>${s.webhookUrl}</code>` : '—'}</td><td>${isoOrDash(s.createdAt)}</td><td>${o.action === null ? '' : actionButton({ action: o.action, csrf: o.csrf, fields: { id: s.id }, label: 'Unsubscribe', about: `${o.owner ? `${s.owner} ` : ''}from ${s.rules.join(', ')} (${s.email ?? s.webhookUrl ?? ''})`, kind: 'danger' })}</td></tr>`,
  );
}

export const subscriptionTable = (caption: string, rows: Html[], owner: boolean): Html =>
  table(caption, [...(owner ? ['Owner'] : []), 'Rules', 'Thresholds', 'Email', 'Webhook', 'Created', ''], rows, 'No subscription: alarms are shown here but nobody is told.');

/** The threshold fields of the subscription form, by name, with the label a refusal names them by. */
const THRESHOLD_LABELS = {
  queueAgeMinutes: 'Queue age (minutes)',
  deliveryLatencySeconds: 'Delivery latency (seconds)',
  deadLetterCount: 'Dead letters (more than this many)',
  deadLetterWindowMinutes: 'Dead letters within (minutes)',
  channels: 'Only on these channels (blank: every channel)',
} as const;

/** A refusal's field as the API names it, in the form's words (the longest first: deadLetters.count before deadLetters). */
const FIELD_WORDS: Array<[string, string]> = [
  ['thresholds.deadLetters.windowMinutes', THRESHOLD_LABELS.deadLetterWindowMinutes],
  ['thresholds.deadLetters.count', THRESHOLD_LABELS.deadLetterCount],
  ['thresholds.deadLetters', 'Dead letters'],
  ['thresholds.queueAgeMinutes', THRESHOLD_LABELS.queueAgeMinutes],
  ['thresholds.deliveryLatencySeconds', THRESHOLD_LABELS.deliveryLatencySeconds],
  ['thresholds.channels', 'Only on these channels'],
];

/** A refusal of the subscription's checks, naming a threshold field by its label on the form. */
export function formHelp(help: string): string {
  const hit = FIELD_WORDS.find(([path]) => help.startsWith(path));
  return hit ? `${hit[1]}${help.slice(hit[0].length).replace(/^\.\d+/, '')}` : help;
}

/**
 * The form's threshold fields as a subscription's thresholds (undefined: none filled in, the DIP's), or the
 * field that cannot be one: a number that is not whole, the dead letters' count without its window or the
 * other way round, channels with no threshold to narrow. The bounds are the API's (createSubscription).
 */
export function thresholdsFromForm(field: (name: string) => string): { thresholds: AlarmThresholds | undefined } | { error: string } {
  const numbers: Partial<Record<'queueAgeMinutes' | 'deliveryLatencySeconds' | 'deadLetterCount' | 'deadLetterWindowMinutes', number>> = {};
  for (const name of ['queueAgeMinutes', 'deliveryLatencySeconds', 'deadLetterCount', 'deadLetterWindowMinutes'] as const) {
    const v = field(name).trim();
    if (v === '') continue;
    if (!/^\d{1,9}$/.test(v)) return { error: `${THRESHOLD_LABELS[name]}: a whole number` };
    numbers[name] = Number(v);
  }
  if ((numbers.deadLetterCount === undefined) !== (numbers.deadLetterWindowMinutes === undefined)) return { error: 'Dead letters: give both the number and the window (minutes)' };
  const channels = field('channels').split(/[\s,]+/).filter(Boolean);
  const t: AlarmThresholds = {
    ...(numbers.queueAgeMinutes !== undefined ? { queueAgeMinutes: numbers.queueAgeMinutes } : {}),
    ...(numbers.deliveryLatencySeconds !== undefined ? { deliveryLatencySeconds: numbers.deliveryLatencySeconds } : {}),
    ...(numbers.deadLetterCount !== undefined && numbers.deadLetterWindowMinutes !== undefined ? { deadLetters: { count: numbers.deadLetterCount, windowMinutes: numbers.deadLetterWindowMinutes } } : {}),
  };
  if (Object.keys(t).length === 0) return channels.length > 0 ? { error: `${THRESHOLD_LABELS.channels}: fill in a threshold too (the channels only narrow it)` } : { thresholds: undefined };
  return { thresholds: channels.length > 0 ? { ...t, channels } : t };
}

/** The form that subscribes to the rules offered (each ticked), by e-mail, webhook or both, with thresholds of its own if filled in. */
export function subscribeForm(action: string, csrf: Html, rules: readonly AlarmRule[], legend: string, owner: string): Html {
  return html`<form method="post" action="${action}">${csrf}
<fieldset><legend>${legend}</legend>${rules.map((r) => html`<div>${choice('checkbox', `rule-${r}`, 'rule', r, ruleLabel(r, owner), true)}</div>`)}</fieldset>
<fieldset><legend>Where to send the notices (one or both)</legend>
${input('email', 'Email address', { type: 'email', autocomplete: 'email', maxlength: 254 })}
${input('webhookUrl', 'Webhook URL (receives a signed JSON notice)', { type: 'url', maxlength: 2048, placeholder: 'https://ops.example.com/dip-alarms' })}
</fieldset>
<fieldset><legend>Thresholds of this subscription's own (optional: a blank field keeps the DIP's)</legend>
<p class="muted">Each is for a rule ticked above and replaces the DIP's threshold for this subscription's notices of that rule, on ${owner === 'operator' ? 'every queue' : 'our own queues only'}.</p>
${input('queueAgeMinutes', THRESHOLD_LABELS.queueAgeMinutes, { type: 'number', inputmode: 'numeric', min: THRESHOLD_BOUNDS.queueAgeMinutes.minimum, max: THRESHOLD_BOUNDS.queueAgeMinutes.maximum })}
${input('deliveryLatencySeconds', THRESHOLD_LABELS.deliveryLatencySeconds, { type: 'number', inputmode: 'numeric', min: THRESHOLD_BOUNDS.deliveryLatencySeconds.minimum, max: THRESHOLD_BOUNDS.deliveryLatencySeconds.maximum })}
${input('deadLetterCount', THRESHOLD_LABELS.deadLetterCount, { type: 'number', inputmode: 'numeric', min: THRESHOLD_BOUNDS.deadLetterCount.minimum, max: THRESHOLD_BOUNDS.deadLetterCount.maximum })}
${input('deadLetterWindowMinutes', THRESHOLD_LABELS.deadLetterWindowMinutes, { type: 'number', inputmode: 'numeric', min: THRESHOLD_BOUNDS.deadLetterWindowMinutes.minimum, max: THRESHOLD_BOUNDS.deadLetterWindowMinutes.maximum })}
${input('channels', THRESHOLD_LABELS.channels, { maxlength: 1000, placeholder: 'IF-021, IF-022' })}
</fieldset>
<button type="submit">Subscribe</button></form>`;
}
