import { alarmSeverity } from '../pipeline/alarm-actions.js';
import type { AlarmCondition, AlarmRule, AlarmSubscription } from '../ports/alarms.js';
import { actionButton, badge, choice, html, input, isoOrDash, table, type Html } from './html.js';

/** Each rule as a subscription form offers it, in the words of the one told. */
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

/** An alarm's severity as a badge: the word is there, not only the colour. */
export const severityBadge = (c: Pick<AlarmCondition, 'rule'>): Html => (alarmSeverity(c) === 'critical' ? badge('bad', 'critical') : badge('warn', 'warning'));

/** Critical first, then the oldest: what has waited longest for someone on call. */
export const byUrgency = (a: Pick<AlarmCondition, 'rule' | 'since'>, b: Pick<AlarmCondition, 'rule' | 'since'>): number =>
  Number(alarmSeverity(b) === 'critical') - Number(alarmSeverity(a) === 'critical') || a.since - b.since;

/** Subscriptions as rows, each with its own remove button (the CSRF token and the subscription's ID). */
/** `o.action`: where a subscription is removed; null: no button (a user whose level may not). */
export function subscriptionRows(subs: readonly AlarmSubscription[], o: { action: string | null; csrf: string; owner: boolean }): Html[] {
  return subs.map(
    (s) =>
      html`<tr>${o.owner ? html`<td>${s.owner}</td>` : ''}<td>${s.rules.join(', ')}</td><td>${s.email ?? '—'}</td><td>${s.webhookUrl ? html`<code>${s.webhookUrl}</code>` : '—'}</td><td>${isoOrDash(s.createdAt)}</td><td>${o.action === null ? '' : actionButton({ action: o.action, csrf: o.csrf, fields: { id: s.id }, label: 'Unsubscribe', about: `${o.owner ? `${s.owner} ` : ''}from ${s.rules.join(', ')} (${s.email ?? s.webhookUrl ?? ''})`, kind: 'danger' })}</td></tr>`,
  );
}

export const subscriptionTable = (caption: string, rows: Html[], owner: boolean): Html =>
  table(caption, [...(owner ? ['Owner'] : []), 'Rules', 'Email', 'Webhook', 'Created', ''], rows, 'No subscription: alarms are shown here but nobody is told.');

/** The form that subscribes to the rules offered (each ticked), by e-mail, webhook or both. */
export function subscribeForm(action: string, csrf: Html, rules: readonly AlarmRule[], legend: string): Html {
  return html`<form method="post" action="${action}">${csrf}
<fieldset><legend>${legend}</legend>${rules.map((r) => html`<div>${choice('checkbox', `rule-${r}`, 'rule', r, RULE_LABELS[r], true)}</div>`)}</fieldset>
<fieldset><legend>Where to send the notices (one or both)</legend>
${input('email', 'Email address', { type: 'email', autocomplete: 'email', maxlength: 254 })}
${input('webhookUrl', 'Webhook URL (receives a signed JSON notice)', { type: 'url', maxlength: 2048, placeholder: 'https://ops.example.com/dip-alarms' })}
</fieldset>
<button type="submit">Subscribe</button></form>`;
}
