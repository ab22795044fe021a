import type { FastifyReply } from 'fastify';
import { BUSINESS_FLOWS } from '../catalogue/business-flows.js';
import { RefusedError } from '../pipeline/refused.js';
import { journeyOf, REPORT_RETRY_AFTER_SECONDS, type Reports } from '../pipeline/reports.js';
import { STATUS_CHANNEL } from '../pipeline/status.js';
import type { TracedDelivery, TracedMessage } from '../ports/traces.js';
import { dateTime, freeText, oneOf } from './filters.js';
import { facts, filterForm, html, input, isoOrDash, select, table, when, withoutReason, type BadgeKind, type Html } from './html.js';

/**
 * The audit reports of spec 5.11.3 (figures 16 to 19), the same in both portals: the general (sender)
 * audit, the correlation/transaction ID and MPAN traces, and the detailed audit of one message. They show
 * what the reports API answers (src/pipeline/reports.ts), cut to the viewer there; this module only lays
 * it out. Every status is a mark with its word beside it (never a colour alone).
 */

/** A row of the sender audit, as Reports.senderAudit answers it (and the reports API gives as JSON). */
export type SenderAuditRow = Awaited<ReturnType<Reports['senderAudit']>>[number];

const HOUR_MS = 3_600_000;
/** Without from/to, the audit reports cover the last day (the reports API's default). */
const DEFAULT_WINDOW_MS = 24 * HOUR_MS;

/** The business processes of the catalogue (src/catalogue/business-flows.ts) a report may be cut to. */
export const PROCESS_IDS = BUSINESS_FLOWS.map((f) => f.id);
const flow = (id: string) => BUSINESS_FLOWS.find((f) => f.id === id);

/** The filters the general audit and the traces take (src/portal/filters.ts rules). */
export const AUDIT_FILTERS = { process: oneOf(['', ...PROCESS_IDS], ''), channels: freeText(400), from: dateTime(), to: dateTime() } as const;
export const TRACE_FILTERS = { process: oneOf(['', ...PROCESS_IDS], ''), correlationId: freeText(200), transactionId: freeText(200), from: dateTime(), to: dateTime() } as const;
export const MPAN_FILTERS = { mpan: freeText(13), from: dateTime(), to: dateTime() } as const;

type Instant = { ms: number; lastMs: number } | null;

/** The period asked (the minute `to` names whole), or the last day; a problem when it runs backwards. */
export function periodOf(from: Instant, to: Instant, now: number, allTimeByDefault = false): { fromMs: number; toMs: number } | string {
  const toMs = to?.lastMs ?? now;
  const fromMs = from?.ms ?? (allTimeByDefault ? 0 : toMs - DEFAULT_WINDOW_MS);
  return fromMs < toMs ? { fromMs, toMs } : `from (${isoOrDash(fromMs)}) must be before to (${isoOrDash(toMs)})`;
}

/**
 * The channels a general audit reads: those typed (comma-separated interface IDs), else the chosen
 * business process's steps (figure 16: choosing a process selects its channels), else every channel
 * (undefined).
 */
export function auditChannels(process: string, typed: string): string[] | undefined {
  const listed = typed
    .split(',')
    .map((s) => s.trim().toUpperCase())
    .filter((s) => s !== '');
  if (listed.length > 0) return listed;
  const f = flow(process);
  return f ? f.steps.map((s) => s.interfaceId) : undefined;
}

const processOptions = [{ value: '', label: 'Any (every channel)' }, ...BUSINESS_FLOWS.map((f) => ({ value: f.id, label: `${f.name} (${f.steps.map((s) => s.interfaceId).join(', ')})` }))];

/** A form field's value as the page was asked for it (a datetime-local field takes YYYY-MM-DDTHH:MM). */
const given = (q: Readonly<Record<string, string | undefined>>, name: string) => q[name] ?? '';

/** The general audit's form (figure 16): a business process or channels, and a period. */
export function auditForm(action: string, q: Readonly<Record<string, string | undefined>>, extra: Html | null = null): Html {
  return filterForm(
    action,
    'Messages sent',
    html`${extra}${select('process', 'Business process', processOptions, given(q, 'process'))}
${input('channels', 'Or channels (interface IDs, comma-separated; these win over the process)', { value: given(q, 'channels'), placeholder: 'IF-031, IF-032' })}
${input('from', 'Received from (UTC)', { type: 'datetime-local', value: given(q, 'from') })}
${input('to', 'Received up to (UTC)', { type: 'datetime-local', value: given(q, 'to') })}`,
  );
}

/** The trace's form (figure 17): a business process, and the correlation ID (or transaction ID) that links its messages. */
export function traceForm(action: string, q: Readonly<Record<string, string | undefined>>, extra: Html | null = null): Html {
  return filterForm(
    action,
    'Follow a business process',
    html`${extra}${select('process', 'Business process', processOptions, given(q, 'process'))}
${input('correlationId', 'Correlation ID', { value: given(q, 'correlationId') })}
${input('transactionId', 'Or transaction ID', { value: given(q, 'transactionId') })}
${input('from', 'Received from (UTC, optional)', { type: 'datetime-local', value: given(q, 'from') })}
${input('to', 'Received up to (UTC, optional)', { type: 'datetime-local', value: given(q, 'to') })}`,
    'Trace',
  );
}

/** The MPAN report's form (figure 18). */
export function mpanForm(action: string, q: Readonly<Record<string, string | undefined>>, extra: Html | null = null): Html {
  return filterForm(
    action,
    'Messages about an MPAN',
    html`${extra}${input('mpan', 'MPAN (13 digits)', { value: given(q, 'mpan'), inputmode: 'numeric', pattern: '[0-9]{13}', required: true })}
${input('from', 'Received from (UTC, optional)', { type: 'datetime-local', value: given(q, 'from') })}
${input('to', 'Received up to (UTC, optional)', { type: 'datetime-local', value: given(q, 'to') })}`,
    'Find',
  );
}

/** A report's answer, or its refusal (too many messages in the period: 400; too many reports at once: 429). */
export async function reported<T>(make: () => Promise<T>): Promise<T | RefusedError> {
  try {
    return await make();
  } catch (e) {
    if (e instanceof RefusedError) return e;
    throw e;
  }
}

/** Links between the three audit reports of a portal (`base`: /portal or /operator; `query`: "acting as"). */
export function auditLinks(base: string, query = ''): Html {
  return html`<p><a href="${base}/audit${query}">Messages sent</a> · <a href="${base}/audit/trace${query}">Business process trace</a> · <a href="${base}/audit/mpan${query}">MPAN</a></p>`;
}

/** A status mark: a symbol (hidden from screen readers) and the word, in the badge's colour. */
export function mark(kind: BadgeKind, text: string): Html {
  const symbol = kind === 'ok' ? '✓' : kind === 'bad' ? '✗' : '…';
  return html`<span class="badge ${kind}"><span aria-hidden="true">${symbol}</span> ${text}</span>`;
}

const STATE: Readonly<Record<TracedDelivery['state'], { kind: BadgeKind; text: string }>> = {
  delivered: { kind: 'ok', text: 'delivered' },
  pending: { kind: 'warn', text: 'pending' },
  dead: { kind: 'bad', text: 'dead-lettered' },
  requeued: { kind: 'warn', text: 'dead-lettered, requeued' },
  discarded: { kind: 'bad', text: 'dead-lettered, discarded' },
};
const stateMark = (state: TracedDelivery['state']) => mark(STATE[state].kind, STATE[state].text);

/** Sent (accepted by the API) and DIP (archived, routed): what a message that is in the archive passed. */
const sentMark = () => mark('ok', 'accepted 201');
const dipMark = (recipients: number) => (recipients === 0 ? mark('warn', 'archived, routed to no one') : mark('ok', 'archived and routed'));

function receivedCell(recipients: ReadonlyArray<{ recipient: string; state: TracedDelivery['state']; at?: string | null }>): Html {
  if (recipients.length === 0) return html`<span class="muted">no recipient</span>`;
  return html`<ul class="marks">${recipients.map((r) => html`<li>${r.recipient}: ${stateMark(r.state)}${r.at ? html` <span class="muted">${r.at.replace('.000Z', 'Z')}</span>` : null}</li>`)}</ul>`;
}

/** The general audit (figure 16): a row per message, Sent / DIP / Received, each linking to its detailed audit. */
export function senderAuditTable(caption: string, rows: readonly SenderAuditRow[], link: (r: { channel: string; transactionId: string }) => string): Html {
  return table(
    caption,
    ['At the DIP', 'Channel', 'Transaction', 'Sender', 'Sent', 'DIP', 'Received'],
    rows.map(
      (r) =>
        html`<tr><td>${r.atDip.replace('.000Z', 'Z')}</td><td>${r.channel}</td><td><a href="${link(r)}">${r.transactionId}</a>${r.senderUniqueReference ? html`<br><span class="muted">reference ${r.senderUniqueReference}</span>` : null}</td><td>${r.sender}</td><td>${sentMark()}</td><td>${dipMark(r.recipients.length)}</td><td>${receivedCell(r.recipients.map((x) => ({ recipient: x.recipient, state: x.state, at: x.receivedAt })))}</td></tr>`,
    ),
    'No message sent in this period on these channels.',
  );
}

/**
 * Traced messages (figures 17 and 18) in the order they reached the DIP; a business process's messages
 * only when one is chosen (its channels), each with its place in the process.
 */
export function traceTable(caption: string, messages: readonly TracedMessage[], link: (m: TracedMessage) => string, process = ''): Html {
  const f = flow(process);
  const steps = f ? f.steps.map((s) => s.interfaceId) : null;
  const shown = steps ? messages.filter((m) => steps.includes(m.channel)) : messages;
  return table(
    caption,
    ['At the DIP', ...(steps ? ['Step'] : []), 'Channel', 'Event', 'Transaction', 'Sender', 'Correlation', 'Sent', 'DIP', 'Received'],
    shown.map(
      (m) =>
        html`<tr><td>${isoOrDash(m.receivedAt)}</td>${steps ? html`<td class="num">${steps.indexOf(m.channel) + 1}</td>` : null}<td>${m.channel}</td><td>${m.eventCode}</td><td><a href="${link(m)}">${m.transactionId}</a></td><td>${m.sender}</td><td>${m.correlationId ?? '—'}</td><td>${sentMark()}</td><td>${dipMark(m.deliveries.length)}</td><td>${receivedCell(m.deliveries.map((d) => ({ recipient: d.recipient, state: d.state, at: d.deliveredAt === null ? null : new Date(d.deliveredAt).toISOString() })))}</td></tr>`,
    ),
    f ? `No message of ${f.name} (${steps!.join(', ')}) that you may see is linked by it.` : 'No message that you may see is linked by it.',
  );
}

const elapsed = (ms: number | null) => (ms === null ? '—' : ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`);

/**
 * The detailed audit of one message (figure 19): the API's answer, the DIP's processing (archive, routing,
 * dead letters), each recipient's outcome with the time from receipt to delivery, the error returned to
 * the sender, and the timeline of the recipient chosen (`recipient`; all when null or none of them).
 */
export function detailedAudit(m: TracedMessage, recipient: string | null, selectAction: string, hiddenFields: Html | null, dipId: string): Html {
  const chosen = m.deliveries.find((d) => d.recipient === recipient) ?? null;
  const events = journeyOf(m).filter((e) => chosen === null || e.recipient === undefined || e.recipient === chosen.recipient);
  const dead = m.deliveries.filter((d) => d.deadLetter !== null);
  const rows = m.deliveries.map((d) => {
    const calls = d.attempts.filter((a) => !a.pulled);
    const pulled = d.attempts.some((a) => a.pulled);
    const last = calls.at(-1);
    return html`<tr><th scope="row">${d.recipient}</th><td>${stateMark(d.state)}</td><td class="num">${elapsed(d.deliveredAt === null ? null : d.deliveredAt - m.receivedAt)}</td><td>${pulled ? 'pulled (acknowledged)' : last ? html`${calls.length} call(s), last answered ${last.status ?? 'no answer'} (${last.verdict})` : html`<span class="muted">none yet</span>`}</td><td>${d.deadLetter ? html`${mark('bad', d.deadLetter.reason)} ${withoutReason(d.deadLetter.reason, d.deadLetter.detail)}` : '—'}</td><td>${d.deadLetter ? returnedToSender(m, dipId) : '—'}</td></tr>`;
  });
  return html`<h2>Workflow</h2>
<ol class="workflow">
<li><strong>API</strong> ${m.replayOf ? mark('ok', `replayed copy of ${m.replayOf}`) : sentMark()} <span class="muted">from ${m.sender} (${m.senderRole}) at ${isoOrDash(m.receivedAt)}</span></li>
<li><strong>DIP</strong> ${mark('ok', 'written to the archive')} ${dipMark(m.deliveries.length)} ${dead.length ? mark('bad', `${dead.length} dead letter(s)`) : mark('ok', 'no dead letter')}</li>
<li><strong>Recipients</strong> ${m.deliveries.length ? m.deliveries.map((d) => html`${d.recipient} ${stateMark(d.state)} `) : html`<span class="muted">none</span>`}</li>
</ol>
${table('Each recipient: outcome and time from receipt by the DIP to delivery', ['Recipient', 'Outcome', 'Receipt to delivery', 'Webhook calls or pull', 'Dead letter', 'Returned to sender'], rows, 'No recipient copy that you may see.')}
${when(m.deliveries.length > 1, () =>
  filterForm(selectAction, 'Choose a recipient', html`${hiddenFields}${select('recipient', 'Recipient', [{ value: '', label: 'All recipients' }, ...m.deliveries.map((d) => ({ value: d.recipient, label: d.recipient }))], chosen?.recipient ?? '')}`),
)}
<h2>Timeline${chosen ? `: ${chosen.recipient}` : ''}</h2>
<ol class="timeline">${events.map((e) => html`<li><time datetime="${e.at}">${e.at.replace('.000Z', 'Z')}</time> <strong>${e.event}</strong> ${e.detail}</li>`)}</ol>`;
}

/**
 * What the DIP does for a dead-lettered copy's sender (StatusMessages.fromDip, src/pipeline/status.ts): a
 * status message back, except about a status message (no status about a status) or about a message the
 * DIP sent itself (its dead letter is the operator's report).
 */
function returnedToSender(m: TracedMessage, dipId: string): Html {
  if (m.channel === STATUS_CHANNEL) return html`<span class="muted">none: no status message about a status message</span>`;
  if (m.sender === dipId) return html`<span class="muted">none: sent by the DIP (the dead letter is the operator's report)</span>`;
  return mark('ok', `the DIP returns a status message to ${m.sender}`);
}

/** A report page's reply: refused 429 (too many reports at once, Reports.gated), with the API's Retry-After, for whoever reloads the page. */
export function reportReply(reply: FastifyReply, status: number): FastifyReply {
  return status === 429 ? reply.header('retry-after', String(REPORT_RETRY_AFTER_SECONDS)) : reply;
}

/** The header of one message: what the trace knows of it (the payload is shown where the viewer may read it). */
export function messageHeader(m: TracedMessage): Html {
  return facts([
    ['Transaction', html`<code>${m.transactionId}</code>`],
    ['Channel', m.channel],
    ['Event', m.eventCode],
    ['Sender', `${m.sender} (${m.senderRole})`],
    ['Sender reference', m.senderUniqueReference ?? '—'],
    ['Correlation', m.correlationId ?? '—'],
    ['Received by the DIP', isoOrDash(m.receivedAt)],
  ]);
}
