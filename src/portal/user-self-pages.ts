import type { FastifyReply } from 'fastify';
import { Readable } from 'node:stream';
import { receivesOn } from '../domain/channel.js';
import { createSubscription } from '../pipeline/alarms.js';
import { alarmAction } from '../pipeline/alarm-actions.js';
import { downloadRefusal, mayRead } from '../pipeline/publications.js';
import { RefusedError } from '../pipeline/refused.js';
import { STATUS_CHANNEL } from '../pipeline/status.js';
import { ALARM_RULES, OPERATOR_RULES } from '../ports/alarms.js';
import type { PublicationRecord } from '../ports/publications.js';
import { activityTable } from './activity-view.js';
import { byUrgency, formHelp, severityBadge, subscribeForm, subscriptionRows, subscriptionTable, thresholdsFromForm } from './alarms-view.js';
import type { PortalDeps } from './deps.js';
import { badge, barChart, bytes, choice, html, input, isoOrDash, table, type Flash } from './html.js';
import { periodForm, reportCharts } from './reports-view.js';
import { oneOf } from './filters.js';
import { definitionFilter } from '../pipeline/saved-reports.js';
import { reportOwner } from '../domain/saved-report.js';
import { openSavedReport, removeSavedReport, REPORT_FILTERS, savedReportsSection, saveShownReport, shownOf, type SavedReportsPage, type ShownReport } from './saved-reports-view.js';
import { csrfField, fields, field, isReply, refuse, render } from './session.js';
import { levelNote, may, USER_REALM as R, userFilters, type UserCtx as Ctx, type UserPageRegistrar as Registrar } from './user-realm.js';

/**
 * The user portal's pages about the participant itself: reports, its API activity, its alarm
 * subscriptions and the Pattern B publications it may download. Each is the participant API's answer to
 * the participant as the caller (the user's own participant, never one named in the URL or form): the
 * same functions the routes call, with the same owner and the same refusals.
 */

const DAY_MS = 86_400_000;
/** The most rows the activity and publication pages show. */
const ROWS = 200;

export function registerUserSelfPages(page: Registrar, deps: PortalDeps): void {
  page('/reports', 'GET', async (c) => reportsPage(deps, c));
  page('/reports/saved', 'POST', async (c) => saveShownReport(deps, savedOn(deps, c)), { needs: 'viewer' });
  page('/reports/saved/remove', 'POST', async (c) => removeSavedReport(deps, savedOn(deps, c)), { needs: 'viewer' });
  page('/reports/saved/:id', 'GET', async (c) => openSavedReport(deps, savedOn(deps, c)));
  page('/activity', 'GET', async (c) => activityPage(deps, c));
  page('/alarms', 'GET', async (c) => alarmsPage(deps, c, null, 200));
  page('/alarms', 'POST', async (c) => subscribe(deps, c), { needs: 'operations' });
  page('/alarms/remove', 'POST', async (c) => unsubscribe(deps, c), { needs: 'operations' });
  page('/publications', 'GET', async (c) => publicationsPage(deps, c));
  page('/publications/:channel/:id', 'GET', async (c) => download(deps, c), { streamedAnswer: true });
}

/**
 * The participant's reports, narrowed by channels, sender or recipient as saved reports are; `shown` a
 * saved report's filters (after saving it), else the query's. Its saved reports below.
 */
async function reportsPage(deps: PortalDeps, c: Ctx, shown: ShownReport | null = null, flash: Flash = null, status = 200): Promise<FastifyReply> {
  const p = c.own;
  const f = shown ?? userFilters(c, 'Reports', REPORT_FILTERS);
  if (isReply(f)) return f;
  const narrow = 'channel' in f ? shownOf(f) : f;
  const { period, filter } = definitionFilter(narrow, deps.clock.now());
  const form = periodForm('/portal/reports', period, html`${input('channel', 'Channels (optional: interface IDs, comma-separated)', { value: narrow.channels.join(',') })}${input('sender', 'Sender DIP ID (optional)', { value: narrow.sender ?? '' })}${input('recipient', 'Recipient DIP ID (optional)', { value: narrow.recipient ?? '' })}`);
  const saved = savedReportsSection({ base: '/portal/reports', saved: await deps.savedReports.store.list(reportOwner(c.signed.account)), csrf: c.signed.claims.csrf, shown: narrow, mailing: deps.savedReports.mailing });
  const unknown = narrow.channels.filter((id) => !deps.channel(id));
  if (unknown.length) return render(c.reply, 400, R, c.req, c.signed, 'Reports', html`${form}<p role="alert">channels: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} no channel of this DIP</p>${saved}`, flash);
  // The reports API's own computation, for the participant as viewer: its messages and its copies only.
  const viewer = { kind: 'participant', dipId: p.dipId } as const;
  const read = await Promise.all([deps.reports.throughput(viewer, filter), deps.reports.latency(viewer, filter)]).catch((e: unknown) => {
    if (e instanceof RefusedError) return e;
    throw e;
  });
  // More messages in the period than one report counts: said, with the form to choose a shorter one.
  if (read instanceof RefusedError) return render(read.status === 429 ? c.reply.header('retry-after', '5') : c.reply, read.status, R, c.req, c.signed, 'Reports', html`${form}<p role="alert">${read.message}</p>${saved}`, flash);
  const [throughput, latency] = read;
  const verdicts = { delivered: 0, retry: 0, rejected: 0 };
  for (const ch of [...deps.channels.all().filter((x) => receivesOn(x, p)).map((x) => x.interfaceId), STATUS_CHANNEL]) {
    if (!deps.registry.webhook(p.dipId, ch)) continue;
    for (const a of await deps.archive.attempts({ recipientDipId: p.dipId, channel: ch }, 200)) if (a.startedAt >= period.fromMs) verdicts[a.verdict] += 1;
  }
  const body = html`${form}
<p class="muted">${period.label}: messages ${p.dipId} sent or received${narrow.channels.length || narrow.sender || narrow.recipient ? ' that match' : ''}, from the archive and the delivery journal, and its submissions the DIP refused, from the API activity log (the reports API, /observability/reports, gives the same as JSON or CSV).</p>
${reportCharts(period, throughput, latency)}
${barChart('Webhook calls by answer', [
  { label: 'delivered', value: verdicts.delivered, kind: 'ok' },
  { label: 'retried', value: verdicts.retry, kind: 'warn' },
  { label: 'rejected', value: verdicts.rejected, kind: 'bad' },
])}
${saved}`;
  return render(c.reply, status, R, c.req, c.signed, 'Reports', body, flash);
}

/** The saved reports' actions of the user portal's Reports page (src/portal/saved-reports-view.ts). */
const savedOn = (deps: PortalDeps, c: Ctx): SavedReportsPage => ({ ...c, realm: R, base: '/portal/reports', participantDipId: c.own.dipId, page: (shown, flash, status) => reportsPage(deps, c, shown, flash, status) });

async function activityPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  if (!deps.activityLog) return render(c.reply, 200, R, c.req, c.signed, 'API activity', html`<p>The API activity log is turned off on this DIP.</p>`);
  const now = deps.clock.now();
  const f = userFilters(c, 'API activity', { days: oneOf(['1', '7'], '7') });
  if (isReply(f)) return f;
  const days = Number(f.days);
  // Only records made as the user's own participant (by it, or by its DIP Connection Provider for it) or
  // by it for a participant it connects: the store is asked for nothing else.
  const records = await deps.activityLog.recent(now - days * DAY_MS, now + 1, ROWS, { caller: c.own.dipId });
  const body = html`<form method="get" action="/portal/activity" class="search"><fieldset><legend>Period</legend>${choice('radio', 'days-1', 'days', '1', 'The last 24 hours', days === 1)} ${choice('radio', 'days-7', 'days', '7', 'The last 7 days', days === 7)} <button type="submit">Show</button></fieldset></form>
<p class="muted">Every request ${c.own.dipId}'s systems made to the DIP's participant API, and every request its DIP Connection Provider made for it, accepted or refused, as the DIP's activity log recorded it (the request ID is the one answered in <code>x-request-id</code>). At most ${ROWS}, newest first.</p>
${activityTable(`Requests from ${c.own.dipId}`, records, c.own.dipId, `No request from ${c.own.dipId} in this period.`)}`;
  return render(c.reply, 200, R, c.req, c.signed, 'API activity', body);
}

async function alarmsPage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  if (!deps.alarms) return render(c.reply, 200, R, c.req, c.signed, 'Alarms', html`<p>Alarms are turned off on this DIP.</p>`, flash);
  const owner = c.own.dipId;
  const now = deps.alarms.alarms.current(owner);
  const subs = await deps.alarms.subscriptions.list(owner);
  const current = [...now].sort(byUrgency).map((a) => html`<tr><td>${severityBadge(a)}</td><td>${a.rule}</td><td>${a.summary}</td><td>${alarmAction(a, owner)}</td><td>${isoOrDash(a.since)}</td></tr>`);
  const operations = may(c, 'operations');
  const rows = subscriptionRows(subs, { action: operations ? '/portal/alarms/remove' : null, csrf: c.signed.claims.csrf, owner: false });
  const body = html`<h2>Alarms now</h2>
${table(`Alarms that concern ${owner} now`, ['Severity', 'Rule', 'What', 'What to do', 'Since'], current, `No alarm concerns ${owner} now.`)}
<h2>Subscriptions</h2>
${subscriptionTable(`${owner}'s alarm subscriptions`, rows, false)}
${operations ? subscribeForm('/portal/alarms', csrfField(c.signed), ALARM_RULES.filter((r) => !OPERATOR_RULES.has(r)), 'Tell us when', owner) : levelNote(c, 'operations', 'subscribing to alarms and unsubscribing')}`;
  return render(c.reply, status, R, c.req, c.signed, 'Alarms', body, flash);
}

async function subscribe(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  if (!deps.alarms) return refuse(c.reply, R, c.req, c.signed, 404, 'alarms are turned off on this DIP');
  const email = field(c.req.body, 'email').trim();
  const webhookUrl = field(c.req.body, 'webhookUrl').trim();
  const own = thresholdsFromForm((name) => field(c.req.body, name));
  if ('error' in own) return alarmsPage(deps, c, { kind: 'error', text: `not subscribed: ${own.error}` }, 400);
  // The form as the API's JSON body; checked by the same schema and rules as POST /observability/alarm-subscriptions.
  const made = await createSubscription(deps.alarms, c.own.dipId, { rules: fields(c.req.body, 'rule'), ...(email ? { email } : {}), ...(webhookUrl ? { webhookUrl } : {}), ...(own.thresholds ? { thresholds: own.thresholds } : {}) });
  if (!made.ok) return alarmsPage(deps, c, { kind: 'error', text: `not subscribed: ${formHelp(made.help)}` }, 400);
  deps.logger.info({ username: c.signed.account.username, owner: c.own.dipId, id: made.subscription.id }, 'portal: alarm subscription created');
  return alarmsPage(deps, c, { kind: 'ok', text: `subscribed to ${made.subscription.rules.join(', ')}` }, 200);
}

async function unsubscribe(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  if (!deps.alarms) return refuse(c.reply, R, c.req, c.signed, 404, 'alarms are turned off on this DIP');
  const id = field(c.req.body, 'id');
  // Removed only when the owner is the user's participant: another's subscription is answered as unknown.
  if (!(await deps.alarms.subscriptions.remove(c.own.dipId, id))) return alarmsPage(deps, c, { kind: 'error', text: `${c.own.dipId} has no alarm subscription ${id}` }, 404);
  deps.logger.info({ username: c.signed.account.username, owner: c.own.dipId, id }, 'portal: alarm subscription removed');
  return alarmsPage(deps, c, { kind: 'ok', text: 'unsubscribed' }, 200);
}

async function publicationsPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const p = c.own;
  // What the participant may read (the API's mayRead on the channels it receives or publishes on, and the
  // public ones), and, for a DIP Connection Provider, what each participant that nominated it may read:
  // the API serves the provider those too (downloadRefusal's nominees).
  const found = new Map<string, { record: PublicationRecord; readers: string[] }>();
  const add = (r: PublicationRecord, reader: string | null) => {
    const row = found.get(r.id) ?? { record: r, readers: [] };
    if (reader !== null && !row.readers.includes(reader)) row.readers.push(reader);
    found.set(r.id, row);
  };
  const identities = deps.registry.identitiesOf(p);
  const readsNothing: string[] = [];
  for (const who of identities) {
    const readable = deps.channels.all().filter((ch) => mayRead(ch, who, deps.publications.publisherRoles(ch))).map((ch) => ch.interfaceId);
    if (!readable.length) readsNothing.push(who.dipId);
    for (const r of readable.length ? await deps.publications.find({ channels: readable, namedFor: who.dipId, limit: ROWS }) : []) add(r, who.dipId === p.dipId ? null : who.dipId);
  }
  for (const r of await deps.publications.find({ publicOnly: true, limit: ROWS })) add(r, null);
  const list = [...found.values()].sort((a, b) => b.record.publishedAt - a.record.publishedAt).slice(0, ROWS);
  const rows = list.map(
    ({ record: r, readers }) => html`<tr><td>${r.channel}</td><td>${r.publicationType}</td><td>${r.version}</td><td>${r.publisherDipId}</td><td>${isoOrDash(r.publishedAt)}</td><td>${r.effectiveFrom ?? '—'} to ${r.effectiveTo ?? '—'}</td><td class="num">${bytes(r.size)}</td><td>${r.public ? badge('ok', 'public') : ''}${readers.length ? html` <span class="muted">for ${readers.join(', ')}</span>` : ''}</td>
<td><a href="/portal/publications/${encodeURIComponent(r.channel)}/${encodeURIComponent(r.id)}" download>${r.fileName}<span class="skip"> (${r.format}${r.compression === 'none' ? '' : `, ${r.compression}`})</span></a></td></tr>`,
  );
  const clients = identities.length > 1 ? html`, and those of the participants that nominated it as their DIP Connection Provider (${identities.slice(1).map((i) => i.dipId).join(', ')})` : '';
  const body = html`<p class="muted">Pattern B publications ${p.dipId} may download: every one on the channels it receives or publishes on${clients}, and the public ones. The newest ${ROWS}. Systems fetch them with <code>GET /dip-channel/{channel}/publications/{id}/content</code> (resumable, with row filters).</p>
${table('Publications', ['Channel', 'Type', 'Version', 'Publisher', 'Published', 'Effective', 'Size', '', 'Download'], rows, 'No publication to download.')}
${readsNothing.length === identities.length ? html`<p class="muted">${p.dipId} (${p.roles.join(', ')}) receives or publishes on no channel: only public publications are listed.</p>` : ''}`;
  return render(c.reply, 200, R, c.req, c.signed, 'Publications', body);
}

async function download(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const channel = deps.channel(c.req.params.channel ?? '');
  if (!channel) return refuse(c.reply, R, c.req, c.signed, 404, `'${c.req.params.channel ?? ''}' is not a channel of this DIP`);
  const id = c.req.params.id ?? '';
  const record = await deps.publications.get(id);
  // As the API: a provider's user downloads what a participant that nominated it may read, while nominated.
  const refused = downloadRefusal(channel, c.own, id, record, deps.publications.publisherRoles(channel), deps.registry.nomineesOf(c.own));
  if (refused || !record) return refuse(c.reply, R, c.req, c.signed, refused?.status ?? 404, refused?.help ?? `no publication ${id}`);
  deps.logger.info({ username: c.signed.account.username, participant: c.own.dipId, publication: record.id }, 'portal: publication downloaded');
  return c.reply
    .header('content-disposition', `attachment; filename="${record.fileName.replace(/["\\\r\n]/g, '_')}"`)
    .header('content-length', String(record.size))
    .header('x-opendip-compression', record.compression)
    .type('application/octet-stream')
    .send(Readable.from(deps.publications.read(record), { objectMode: false }));
}
