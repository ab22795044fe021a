import type { FastifyInstance, FastifyReply } from 'fastify';
import { OFFBOARD_ROUTE, operatorRefusal } from '../domain/operators.js';
import { isUserLevel, USER_LEVELS } from '../domain/portal-levels.js';
import { utcAndUkOrDash } from '../domain/uk-time.js';
import { realmOf } from '../ports/portal-accounts.js';
import { enrolmentPanel, newUserForm, userRows } from './accounts-view.js';
import { noticeTable, publishForm, utcFromForm } from './maintenance-pages.js';
import { activityTable } from './activity-view.js';
import { byUrgency, formHelp, severityBadge, subscribeForm, subscriptionRows, subscriptionTable, thresholdsFromForm } from './alarms-view.js';
import { ALARM_RULES } from '../ports/alarms.js';
import type { PortalDeps } from './deps.js';
import { periodForm, reportCharts, reportPeriod } from './reports-view.js';
import { actionButton, alertLine, badge, bytes, codeBlock, daysLeftBadge, deadLetterText, facts, filterForm, hidden, html, input, isoOrDash, select, table, textarea, type Flash, type Html } from './html.js';
import { csrfField, field, fields, isReply, pageRoutes, refuse, render } from './session.js';
import { dateTime, dipId, freeText, integer, oneOf, type Filters } from './filters.js';
import { reportOwner } from '../domain/saved-report.js';
import { openSavedReport, removeSavedReport, REPORT_FILTERS, savedReportsSection, saveShownReport, shownOf, type SavedReportsPage, type ShownReport } from './saved-reports-view.js';
import { WITHDRAWAL_REASON_MAX } from '../pipeline/publications.js';
import { OnboardingPages } from './onboarding-pages.js';
import { reportReply } from './audit-view.js';
import { registerOperatorAuditPages } from './operator-audit-pages.js';
import { api, filtersOf, OPERATOR_REALM, problemOf, type OperatorCtx } from './operator-realm.js';
import { createParticipant, createParticipantForm, journalTable, manageParticipant, offboardedParticipant, participantAction } from './participant-admin-pages.js';

export { OPERATOR_REALM };

const O = OPERATOR_REALM;

type Ctx = OperatorCtx;

/**
 * The operator portal. Every read and action that the operator API offers goes through it (in-process,
 * PortalDeps.operatorApi), so the portal does exactly what `dip dead-letters …`, `dip pki …` and tooling
 * do, checked by the same schemas; the portal only adds the operator's own sign-in.
 */
export function registerOperatorPortal(app: FastifyInstance, deps: PortalDeps): void {
  const page = pageRoutes<Ctx>(app, deps, O, (req, reply, signed) => ({ req, reply, signed }));
  page('/', 'GET', async (c) => healthPage(deps, c));
  page('/alarms', 'GET', async (c) => alarmsPage(deps, c, null, 200));
  page('/alarms', 'POST', async (c) => subscribeToAlarms(deps, c));
  page('/alarms/remove', 'POST', async (c) => removeAlarmSubscription(deps, c));
  page('/participants', 'GET', async (c) => participantsPage(deps, c, null, null, 200));
  page('/participants', 'POST', async (c) => {
    const done = await createParticipant(api(deps, c), c.req);
    return participantsPage(deps, c, done.shown, done.flash, done.status);
  });
  page('/participants/:dipId', 'GET', async (c) => participantPage(deps, c, null, 200));
  for (const action of ['suspend', 'reactivate', 'certificate', 'revoke', 'offboard']) {
    page(`/participants/:dipId/${action}`, 'POST', async (c) => {
      const done = await participantAction(api(deps, c), c.req.params.dipId ?? '', action, c.req);
      return participantPage(deps, c, done.shown, done.status, done.flash);
    });
  }
  page('/participants/:dipId/users', 'POST', async (c) => createParticipantUser(deps, c));
  page('/participants/:dipId/users/disable', 'POST', async (c) => disableAccount(deps, c, c.req.params.dipId ?? ''));
  const applications = new OnboardingPages(O, api);
  page('/applications', 'GET', async (c) => applications.list(deps, c));
  page('/applications/:id', 'GET', async (c) => applications.one(deps, c, null, 200));
  page('/applications/:id/approve', 'POST', async (c) => applications.approve(deps, c));
  page('/applications/:id/reject', 'POST', async (c) => applications.reject(deps, c));
  page('/channels', 'GET', async (c) => channelsPage(deps, c));
  page('/channels/:id', 'GET', async (c) => channelPage(deps, c));
  page('/publications', 'GET', async (c) => publicationsPage(deps, c, null, 200));
  page('/publications/withdraw', 'POST', async (c) => withdrawPublication(deps, c));
  page('/reports', 'GET', async (c) => reportsPage(deps, c));
  // Every role's (viewer too): an operator's own saved reports change nothing of the DIP's.
  page('/reports/saved', 'POST', async (c) => saveShownReport(deps, savedOn(deps, c)));
  page('/reports/saved/remove', 'POST', async (c) => removeSavedReport(deps, savedOn(deps, c)));
  page('/reports/saved/:id', 'GET', async (c) => openSavedReport(deps, savedOn(deps, c)));
  registerOperatorAuditPages(page, deps);
  page('/activity', 'GET', async (c) => activityPage(deps, c));
  page('/dead-letters', 'GET', async (c) => deadLettersPage(deps, c, null, 200));
  page('/dead-letters', 'POST', async (c) => deadLetterAction(deps, c));
  page('/requeue-jobs', 'GET', async (c) => requeueJobsPage(deps, c, null, 200));
  page('/requeue-jobs/resume', 'POST', async (c) => resumeRequeueJob(deps, c));
  page('/certificates', 'GET', async (c) => certificatesPage(deps, c, null, null, 200));
  page('/certificates/issue', 'POST', async (c) => issueCertificate(deps, c));
  page('/certificates/revoke', 'POST', async (c) => revokeCertificate(deps, c));
  page('/operators', 'GET', async (c) => operatorsPage(deps, c, null, null, 200));
  page('/operators', 'POST', async (c) => createOperator(deps, c));
  page('/operators/disable', 'POST', async (c) => disableAccount(deps, c, null));
  page('/journal', 'GET', async (c) => journalPage(deps, c));
  page('/journal.csv', 'GET', async (c) => journalCsv(deps, c));
  page('/maintenance', 'GET', async (c) => maintenancePage(deps, c, null, 200));
  page('/maintenance', 'POST', async (c) => publishNotice(deps, c));
  page('/maintenance/withdraw', 'POST', async (c) => withdrawNotice(deps, c));
}

async function healthPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const health = await api(deps, c).GET('/admin/health');
  const queues = await api(deps, c).GET('/admin/queues');
  // 503 (the store takes no writes) answers the same health document.
  const answer = health.data ?? health.error;
  const storage = 'storage' in answer ? answer.storage : { state: 'unavailable' as const, reason: problemOf(answer) };
  const rows = (queues.data ?? [])
    .slice()
    // Failing first, then the deepest backlog: what an operator on call looks at first.
    .sort((a, b) => b.failures - a.failures || (b.depth ?? 0) - (a.depth ?? 0))
    .slice(0, 200)
    .map((q) => html`<tr><td>${q.queue.recipientDipId}</td><td>${q.queue.channel}</td><td>${badge(q.state === 'halted' || q.failures > 0 ? 'bad' : q.state === 'idle' ? 'ok' : 'warn', q.state)}</td><td class="num">${q.ackedSeq}</td><td class="num">${q.depth ?? '–'}</td><td>${isoOrDash(q.oldestReceivedAt)}</td><td class="num">${q.failures}</td><td>${q.damage ? html`${badge('bad', 'damaged')} ${q.damage}` : (q.lastError ?? '')}</td><td>${isoOrDash(q.retryAt)}</td></tr>`);
  const loading = 'loading' in answer ? answer.loading : null;
  const activityLog = 'activityLog' in answer ? answer.activityLog : undefined;
  // Only a cluster node's health has peerClock (null while no peer is heard): an embedded DIP has no peers.
  const peerClock = 'coordination' in answer ? answer.coordination?.peerClock : undefined;
  const clockCheck = 'clockCheck' in answer ? answer.clockCheck : undefined;
  const body = html`<h2>Storage</h2><p>${badge(storage.state === 'ok' ? 'ok' : 'bad', storage.state)} ${storage.state === 'ok' ? 'takes writes' : (storage.reason ?? '')}</p>
${loading ? html`<p>${badge('warn', 'not ready')} ${loading}</p>` : ''}
${activityLog ? activityLogLine(activityLog) : ''}
${clockCheck ? clockCheckLine(clockCheck) : ''}
${peerClock !== undefined ? peerClockLine(peerClock) : ''}
<h2>Delivery queues on this node</h2>
${table('Queues this node delivers and queues holding messages, failing first', ['Recipient', 'Channel', 'State', 'Settled up to', 'Waiting', 'Oldest waiting since', 'Failures', 'Last error', 'Next try'], rows, 'No queue is being delivered by this node, and none holds messages.')}`;
  return render(c.reply, 200, O, c.req, c.signed, 'Health', body);
}

/** The API activity log's line on the health page: its backlog (records waiting, requests refused for it) shows here too. */
function activityLogLine(a: { state: 'ok' | 'unavailable' | 'damaged'; reason?: string; since?: number; waiting: number; full: boolean; refused: number }): Html {
  const kind = a.state !== 'ok' || a.full ? 'bad' : a.refused > 0 || a.waiting > 0 ? 'warn' : 'ok';
  const what =
    a.state === 'ok'
      ? 'records are written'
      : a.state === 'damaged'
        ? `records were lost or the file found damaged since ${isoOrDash(a.since)}, not yet acknowledged (POST /admin/activity/damage/acknowledge): ${a.reason ?? ''}`
        : `its store refuses this process's records since ${isoOrDash(a.since)}: ${a.reason ?? ''}`;
  return html`<h2>Activity log</h2><p>${badge(kind, a.state)} ${what}; ${a.waiting} waiting in memory${a.full ? ' (full: new requests are refused 503)' : ''}, ${a.refused} requests refused since the start</p>`;
}

type RefusalSeen = { participant: string; skewMs: number; agoMs: number } | null;

/**
 * This node's own clock as participants' signature dates say (GET /admin/health's clockCheck): suspect when
 * the `dip-clock` rule holds; else the last refusals each way, if any, which one participant's clock explains.
 */
function clockCheckLine(c: { suspect: boolean; participants: { ahead: number; behind: number; verified: number }; lastAhead: RefusalSeen; lastBehind: RefusalSeen; windowMs: number }): Html {
  const minutes = Math.round(c.windowMs / 60_000);
  const last = (r: RefusalSeen, way: string): string => (r ? `; the last dated ${way} it: ${r.participant}'s, by ${Math.round(Math.abs(r.skewMs) / 1000)} s, ${Math.round(r.agoMs / 1000)} s ago` : '');
  const p = c.participants;
  const what = `in the last ${minutes} min, participants whose latest signature date was refused as ahead of this node's clock: ${p.ahead}, behind it: ${p.behind}; verified: ${p.verified}${last(c.lastAhead, 'ahead of')}${last(c.lastBehind, 'behind')}`;
  const kind = c.suspect ? 'bad' : p.ahead + p.behind > 0 ? 'warn' : 'ok';
  const note = c.suspect ? " (this node's clock is most likely wrong: the dip-clock alarm is raised; check chronyc tracking)" : '';
  return html`<h2>This node's clock</h2><p>${badge(kind, c.suspect ? 'suspect' : 'ok')} ${what}${note}</p>`;
}

/**
 * The cluster's clocks on the health page: the peer whose clock is furthest from this node's, as its roll
 * calls say. Beyond the leases' allowance the `clock-skew` alarm is raised (queues wait longer to be taken
 * over); beyond five lease lengths the leases ignore it (one node works no queue): docs/cluster.md.
 */
function peerClockLine(p: { node: string; offsetMs: number; allowanceMs: number; believed: boolean } | null): Html {
  if (p === null) return html`<h2>Cluster clocks</h2><p>${badge('ok', 'ok')} no other node heard from lately (by its roll calls)</p>`;
  const skewed = Math.abs(p.offsetMs) > p.allowanceMs;
  const kind = !p.believed ? 'bad' : skewed ? 'warn' : 'ok';
  const note = !p.believed ? ' (beyond five lease lengths: the leases ignore it, and one of the two nodes works no queue)' : skewed ? ' (the clock-skew alarm is raised)' : '';
  return html`<h2>Cluster clocks</h2><p>${badge(kind, skewed ? 'skewed' : 'ok')} ${p.node}'s clock is ${Math.abs(p.offsetMs)} ms ${p.offsetMs > 0 ? 'ahead of' : 'behind'} this node's, the furthest off of the nodes heard from; the queue leases allow ${p.allowanceMs} ms${note}</p>`;
}

/**
 * Alarms (spec 5.11.4): those raised now (GET /admin/alarms, with what to do), critical first; those this
 * node saw resolve lately; and the alarm subscriptions, with the forms the operator API offers on them
 * (subscribe, remove). The API has no acknowledge or silence: an alarm resolves when its condition stops.
 */
async function alarmsPage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  if (!deps.alarms) return render(c.reply, status, O, c.req, c.signed, 'Alarms', html`<p>Alarms are turned off on this DIP (observability.alarms.enabled).</p>`, flash);
  const [raised, subs] = await Promise.all([api(deps, c).GET('/admin/alarms'), api(deps, c).GET('/admin/alarms/subscriptions')]);
  const rows = [...(raised.data?.alarms ?? [])]
    .sort(byUrgency)
    .map((a) => html`<tr><td>${severityBadge(a)}</td><td>${utcAndUkOrDash(a.since)}</td><td>${a.rule}</td><td>${a.participant ?? 'the DIP'}</td><td>${a.summary}</td><td>${a.action}</td></tr>`);
  const resolved = deps.alarms.alarms
    .resolved('operator')
    .map((r) => html`<tr><td>${utcAndUkOrDash(r.resolvedAt)}</td><td>${utcAndUkOrDash(r.condition.since)}</td><td>${r.condition.rule}</td><td>${r.condition.participant ?? 'the DIP'}</td><td>${r.condition.summary}</td></tr>`);
  const body = html`<h2>Raised now</h2>
${raised.data ? '' : alertLine(problemOf(raised.error))}
${table('Alarms raised now, critical first, then the oldest', ['Severity', 'Since', 'Rule', 'Concerns', 'What', 'What to do'], rows, 'No alarm is raised now.')}
<h2>Recently resolved</h2>
<p class="muted">What this node saw resolve since it started (the last 50); "What" is as last read while it held.</p>
${table('Alarms resolved lately, newest first', ['Resolved', 'Raised', 'Rule', 'Concerns', 'What'], resolved, 'No alarm has resolved since this node started.')}
<h2>Subscriptions</h2>
${subs.data ? subscriptionTable("Every alarm subscription, operators' and participants'", subscriptionRows(subs.data.subscriptions, { action: '/operator/alarms/remove', csrf: c.signed.claims.csrf, owner: true }), true) : alertLine(problemOf(subs.error))}
${subscribeForm('/operator/alarms', csrfField(c.signed), ALARM_RULES, 'Tell operators when', 'operator')}`;
  return render(c.reply, status, O, c.req, c.signed, 'Alarms', body, flash);
}

/** Subscribes operators (owner `operator`) through POST /admin/alarms/subscriptions: the same checks as the API. */
async function subscribeToAlarms(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const email = field(c.req.body, 'email').trim();
  const webhookUrl = field(c.req.body, 'webhookUrl').trim();
  const rules = fields(c.req.body, 'rule') as Array<(typeof ALARM_RULES)[number]>;
  const own = thresholdsFromForm((name) => field(c.req.body, name));
  if ('error' in own) return alarmsPage(deps, c, { kind: 'error', text: `not subscribed: ${own.error}` }, 400);
  const made = await api(deps, c).POST('/admin/alarms/subscriptions', { body: { rules, ...(email ? { email } : {}), ...(webhookUrl ? { webhookUrl } : {}), ...(own.thresholds ? { thresholds: own.thresholds } : {}) } });
  if (!made.data) return alarmsPage(deps, c, { kind: 'error', text: `not subscribed: ${formHelp(problemOf(made.error))}` }, made.response.status);
  return alarmsPage(deps, c, { kind: 'ok', text: `operators subscribed to ${made.data.rules.join(', ')}` }, 200);
}

async function removeAlarmSubscription(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const id = field(c.req.body, 'id');
  const done = await api(deps, c).DELETE('/admin/alarms/subscriptions/{id}', { params: { path: { id } } });
  if (done.response.status !== 204) return alarmsPage(deps, c, { kind: 'error', text: `not removed: ${problemOf(done.error)}` }, done.response.status);
  return alarmsPage(deps, c, { kind: 'ok', text: `subscription ${id} removed` }, 200);
}

async function participantsPage(deps: PortalDeps, c: Ctx, shown: Html | null, flash: Flash, status: number): Promise<FastifyReply> {
  const now = deps.clock.now();
  const listed = await api(deps, c).GET('/admin/participants');
  const rows = (listed.data ?? []).map(
    (p) => html`<tr><td><a href="/operator/participants/${p.dipId}">${p.dipId}</a></td><td>${p.organisation}</td><td>${p.roles.join(', ')}</td><td>${p.connectionProvider ?? ''}</td><td>${p.suspended ? badge('bad', 'suspended') : badge('ok', 'active')}</td><td>${daysLeftBadge(Date.parse(p.certificateNotAfter), now)}</td></tr>`,
  );
  const body = html`${shown}${listed.data ? '' : alertLine(problemOf(listed.error))}
${table('Registered participants', ['DIP ID', 'Organisation', 'Roles', 'Connection provider', 'State', 'Certificate'], rows, 'No participant is registered yet: register one below.')}
${createParticipantForm(c.signed)}`;
  return render(c.reply, status, O, c.req, c.signed, 'Participants', body, flash);
}

async function participantPage(deps: PortalDeps, c: Ctx, extra: Html | null, status: number, flash: Flash = null): Promise<FastifyReply> {
  const dipId = c.req.params.dipId ?? '';
  const p = deps.registry.participant(dipId);
  if (!p) return offboardedPage(deps, c, dipId, status, flash);
  const users = await deps.accounts.accounts(dipId);
  const row = (await api(deps, c).GET('/admin/participants')).data?.find((x) => x.dipId === p.dipId);
  // The form is offered to the roles the operator API lets offboard, by the API's own rule.
  const me = (await api(deps, c).GET('/admin/whoami')).data;
  const offboardRefusal = me ? operatorRefusal(me.role, 'POST', OFFBOARD_ROUTE) : 'no operator account in force';
  const agents = deps.registry.participants().filter((x) => x.connectionProvider === dipId);
  const body = html`${facts([
    ['Organisation', p.organisation],
    ['Roles', p.roles.join(', ')],
    ['Connection provider', p.connectionProvider ?? 'none'],
    ['Connects for', agents.map((a) => a.dipId).join(', ') || 'no other participant'],
    ['Registered', isoOrDash(p.createdAt)],
  ])}
${extra}
${row ? manageParticipant(row, c.signed, offboardRefusal) : ''}
<h2>Portal users</h2>
${table(`Portal users of ${dipId}`, ['Username', 'Name', 'Level', 'Created', 'State', ''], userRows(users, { action: `/operator/participants/${dipId}/users/disable`, csrf: c.signed, self: '' }), 'No portal user yet: create its first administrator below.')}
${newUserForm(`/operator/participants/${dipId}/users`, c.signed, 'levels', `New portal user for ${dipId}`)}`;
  return render(c.reply, status, O, c.req, c.signed, `Participant ${dipId}`, body, flash);
}

/** How many journal entries a page shows (newest first). */
const JOURNAL_ROWS = 200;

/**
 * An offboarded participant's page (its profile keeps the rescission): what it was, when, by whom and why,
 * and its journal; a DIP ID never registered is a 404.
 */
async function offboardedPage(deps: PortalDeps, c: Ctx, dipId: string, status: number, flash: Flash): Promise<FastifyReply> {
  const rescinded = deps.registry.rescinded(dipId) ? deps.registry.profile(dipId).profile.rescinded : null;
  if (!rescinded) return refuse(c.reply, O, c.req, c.signed, 404, `${dipId} is not a registered participant`);
  const history = await api(deps, c).GET('/admin/journal', { params: { query: { target: dipId, limit: JOURNAL_ROWS } } });
  const entries = history.data ?? [];
  // The latest offboarding's reason (a DIP ID registered again and offboarded again has two).
  const last = entries.find((e) => e.action === 'participant.offboard');
  const reason = last && typeof last.after === 'object' && last.after !== null && 'reason' in last.after && typeof last.after.reason === 'string' ? last.after.reason : null;
  const shown = history.data ? journalTable(`Journal entries on ${dipId}, newest first (the last ${JOURNAL_ROWS})`, entries, `No journal entry on ${dipId}.`) : alertLine(problemOf(history.error));
  return render(c.reply, status, O, c.req, c.signed, `Participant ${dipId} (offboarded)`, offboardedParticipant({ dipId, rescinded, reason, history: shown }), flash);
}

async function createParticipantUser(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const dipId = c.req.params.dipId ?? '';
  const level = field(c.req.body, 'level');
  if (!isUserLevel(level)) return participantPage(deps, c, null, 400, { kind: 'error', text: `level must be one of ${USER_LEVELS.join(', ')}` });
  const made = await api(deps, c).POST('/admin/portal/accounts', { body: { username: field(c.req.body, 'username'), displayName: field(c.req.body, 'displayName'), participantDipId: dipId, level } });
  if (!made.data) return participantPage(deps, c, null, made.response.status, { kind: 'error', text: problemOf(made.error) });
  return participantPage(deps, c, enrolmentPanel(made.data), 200, { kind: 'ok', text: `user ${made.data.username} created for ${dipId} (${level})` });
}

/** Disables or enables an account of the participant (or an operator, for null). */
async function disableAccount(deps: PortalDeps, c: Ctx, participantDipId: string | null): Promise<FastifyReply> {
  const username = field(c.req.body, 'username');
  const back = (flash: Flash, status: number) => (participantDipId === null ? operatorsPage(deps, c, null, flash, status) : participantPage(deps, c, null, status, flash));
  // The operator's role first, as the API would: whether a name is an account is no answer for a role that may not change it.
  const me = (await api(deps, c).GET('/admin/whoami')).data;
  const refusal = me ? operatorRefusal(me.role, 'POST', '/admin/portal/accounts/{username}/disabled') : 'no operator account in force';
  if (refusal) return back({ kind: 'error', text: refusal }, 403);
  const target = await deps.accounts.account(realmOf({ participantDipId }), username);
  if (!target || target.participantDipId !== participantDipId) return back({ kind: 'error', text: `no such account '${username}' here` }, 404);
  const disable = field(c.req.body, 'disable') !== 'no';
  const changed = await api(deps, c).POST('/admin/portal/accounts/{username}/disabled', { params: { path: { username: target.username } }, body: { disabled: disable, participantDipId } });
  if (!changed.data) return back({ kind: 'error', text: problemOf(changed.error) }, changed.response.status);
  return back({ kind: 'ok', text: `${target.username} ${disable ? 'disabled: signed out everywhere' : 'enabled'}` }, 200);
}

async function channelsPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  // The settings' version and state from the channel management API; the routing in force from the directory.
  const listed = await api(deps, c).GET('/admin/channels');
  const settings = new Map((listed.data ?? []).map((v) => [v.channel, v]));
  const rows = deps.channels.all().map((ch) => {
    const v = settings.get(ch.interfaceId);
    return html`<tr><td><a href="/operator/channels/${encodeURIComponent(ch.interfaceId)}">${ch.interfaceId}</a></td><td>${ch.definition.name}</td><td>${ch.publicationId}</td><td>${ch.definition.schemaVersions.join(', ')}</td><td>${v?.state ? badge(v.state === 'active' ? 'ok' : v.state === 'paused' ? 'warn' : 'bad', v.state) : ''}</td><td class="num">${v?.version ?? 0}</td><td>${ch.senderRoles.join(', ')}</td><td>${ch.receiverRoles.join(', ')}</td><td>${[...ch.alwaysRoles, ...ch.alwaysParticipants].join(', ')}</td><td class="num">${ch.securityPattern}</td></tr>`;
  });
  return render(c.reply, 200, O, c.req, c.signed, 'Channels', table('Channels of the catalogue in force, with the configuration applied', ['Channel', 'Name', 'Publication', 'Schema versions', 'State', 'Settings version', 'Senders', 'Receivers', 'Always', 'Pattern'], rows));
}

/** One channel's settings versions, newest first (GET /admin/channels/{id}/history): who changed what, when, why. */
async function channelPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const id = c.req.params.id ?? '';
  const history = await api(deps, c).GET('/admin/channels/{id}/history', { params: { path: { id } } });
  if (!history.data) return refuse(c.reply, O, c.req, c.signed, history.response.status, problemOf(history.error));
  const rows = [...history.data].reverse().map((v) => html`<tr><td class="num">${v.version}</td><td>${v.state}${v.optIn ? ' (opt-in)' : ''}</td><td>${v.changedAt}</td><td>${v.by}</td><td>${v.note}</td><td><code>${JSON.stringify(v.settings)}</code></td></tr>`);
  const body = html`<p class="muted">Every change to the channel's settings makes a new version; <code>dip channel rollback</code> (or POST /admin/channels/{id}/rollback) restores one.</p>
${table(`Settings versions of ${id}, newest first`, ['Version', 'State', 'When', 'By', 'Note', 'Overrides'], rows, `${id} has the catalogue's settings: never changed.`)}`;
  return render(c.reply, 200, O, c.req, c.signed, `Channel ${id}`, body);
}

/** How many publications the page lists (newest first). */
const PUBLICATION_ROWS = 100;

/**
 * Pattern B publications, newest first (withdrawn ones too, marked: the operator is to see what was
 * withdrawn, when, by whom and why), each not yet withdrawn with its withdraw form. There is no operator
 * API listing: the portal reads the index as its participant pages do; the withdrawal itself is the
 * operator API's (POST /admin/publications/{id}/withdraw), authorised by the operator's role and journalled
 * under her name as from tooling.
 */
async function publicationsPage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  const f = filtersOf(c, 'Publications', { channel: freeText(20) });
  if (isReply(f)) return f;
  // The channel as the catalogue spells it (an ID is read in any case, as in a participant's URL).
  const channel = f.channel ? (deps.channel(f.channel)?.interfaceId ?? f.channel) : '';
  const found = await deps.publications.find({ limit: PUBLICATION_ROWS, includeWithdrawn: true, ...(channel ? { channel } : {}) });
  const csrf = csrfField(c.signed);
  const rows = found.map((r, i) => {
    const w = r.withdrawn;
    const state = w ? html`${badge('bad', 'withdrawn')} ${isoOrDash(w.at)} by ${w.by}: ${w.reason}` : r.public ? badge('ok', 'public') : r.recipients ? `for ${r.recipients.join(', ')}` : "for the channel's recipients";
    // One form per row, folded: a reason is typed for the publication it concerns, and the confirmation ticked.
    const form = w
      ? ''
      : html`<details><summary>Withdraw…<span class="skip"> ${r.id}</span></summary><form method="post" action="/operator/publications/withdraw">${csrf}${hidden('id', r.id)}
${textarea(`reason-${i}`, 'Reason (said in every later 410)', { name: 'reason', required: true, minlength: 1, maxlength: WITHDRAWAL_REASON_MAX, rows: 2 })}
<div><input type="checkbox" id="confirm-${i}" name="confirm" value="yes" required> <label for="confirm-${i}" class="inline-label">I confirm: the bytes of ${r.id} are removed for good</label></div>
<button type="submit" class="danger">Withdraw<span class="skip"> ${r.id}</span></button></form></details>`;
    return html`<tr><td><code>${r.id}</code></td><td>${r.channel}</td><td>${r.publicationType}</td><td>${r.version}</td><td>${r.publisherDipId}</td><td>${isoOrDash(r.publishedAt)}</td><td class="num">${bytes(r.size)}</td><td>${state}</td><td>${form}</td></tr>`;
  });
  const body = html`${filterForm('/operator/publications', 'Filter', input('channel', 'Channel', { value: f.channel }))}
<p class="muted">Withdraw a publication sent to the wrong channel or holding what it should not: its bytes are removed at once and cannot be brought back; whoever could read it is answered 410 with your reason from then on, everyone else as if it never existed; it is listed nowhere; its version is not reused (its publisher publishes a new one); the recipients told of it are sent a withdrawal notice with your reason. The withdrawal is journalled under your name.</p>
${table(`Publications${channel ? ` on ${channel}` : ''}, newest first (the last ${PUBLICATION_ROWS})`, ['Publication', 'Channel', 'Type', 'Version', 'Publisher', 'Published', 'Size', 'For', ''], rows, 'No publication.')}`;
  return render(c.reply, status, O, c.req, c.signed, 'Publications', body, flash);
}

async function withdrawPublication(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const id = field(c.req.body, 'id');
  // The confirmation is the portal's (the API has none): a withdrawal cannot be undone.
  if (field(c.req.body, 'confirm') !== 'yes') return publicationsPage(deps, c, { kind: 'error', text: `${id} not withdrawn: tick the confirmation first` }, 400);
  const done = await api(deps, c).POST('/admin/publications/{publicationId}/withdraw', { params: { path: { publicationId: id } }, body: { reason: field(c.req.body, 'reason') } });
  if (!done.data) return publicationsPage(deps, c, { kind: 'error', text: `${id} not withdrawn: ${problemOf(done.error)}` }, done.response.status);
  const w = done.data.withdrawn;
  return publicationsPage(deps, c, { kind: 'ok', text: `publication ${id} (${done.data.publicationType} version ${done.data.version} on ${done.data.channel}) withdrawn at ${w.at} by ${w.by}: its bytes are removed, every download is answered 410` }, 200);
}

/**
 * Reports across every participant (or some channels, one sender or recipient), from the operator reports
 * API; `shown` a saved report's filters (after saving it), else the query's. The operator's saved reports below.
 */
async function reportsPage(deps: PortalDeps, c: Ctx, shown: ShownReport | null = null, flash: Flash = null, status = 200): Promise<FastifyReply> {
  const f = shown ?? filtersOf(c, 'Reports', REPORT_FILTERS);
  if (isReply(f)) return f;
  const narrow = 'channel' in f ? shownOf(f) : f;
  const period = reportPeriod(narrow.period, deps.clock.now());
  const query = {
    from: new Date(period.fromMs).toISOString(),
    to: new Date(period.toMs).toISOString(),
    granularity: period.granularity,
    ...(narrow.channels.length ? { channel: narrow.channels.join(',') } : {}),
    ...(narrow.sender ? { sender: narrow.sender } : {}),
    ...(narrow.recipient ? { recipient: narrow.recipient } : {}),
  };
  const [throughput, latency] = await Promise.all([api(deps, c).GET('/admin/reports/throughput', { params: { query } }), api(deps, c).GET('/admin/reports/latency', { params: { query } })]);
  const saved = savedReportsSection({ base: '/operator/reports', saved: await deps.savedReports.store.list(reportOwner(c.signed.account)), csrf: c.signed.claims.csrf, shown: narrow, mailing: deps.savedReports.mailing });
  const body = html`${periodForm('/operator/reports', period, html`${input('channel', 'Channels (optional: interface IDs, comma-separated)', { value: narrow.channels.join(',') })}${input('sender', 'Sender DIP ID (optional)', { value: narrow.sender ?? '' })}${input('recipient', 'Recipient DIP ID (optional)', { value: narrow.recipient ?? '' })}`)}
<p class="muted">${period.label}, across ${narrow.channels.length || narrow.sender || narrow.recipient ? 'the messages that match' : 'every participant'}: GET /admin/reports/… gives the same as JSON or CSV.</p>
${throughput.data && latency.data ? reportCharts(period, throughput.data.rows, latency.data.rows) : alertLine(problemOf(throughput.error ?? latency.error))}
${saved}`;
  const answered = throughput.data ? latency.response.status : throughput.response.status;
  // A refused save or delete answers with its own status; the charts' refusal otherwise.
  const code = status === 200 ? answered : status;
  return render(reportReply(c.reply, code), code, O, c.req, c.signed, 'Reports', body, flash);
}

/** The saved reports' actions of the operator portal's Reports page (src/portal/saved-reports-view.ts): an operator's own, viewer as operator. */
const savedOn = (deps: PortalDeps, c: Ctx): SavedReportsPage => ({ ...c, realm: O, base: '/operator/reports', participantDipId: null, page: (shown, flash, status) => reportsPage(deps, c, shown, flash, status) });

/**
 * The API activity log of every listener (GET /admin/activity), newest first, optionally one caller's, the
 * refusals alone, or one request by the x-request-id a participant quotes (then over the whole log).
 */
async function activityPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const f = filtersOf(c, 'API activity', { caller: freeText(), requestId: freeText(), minStatus: oneOf(['any', '400', '500'], 'any'), hours: oneOf(['1', '24'], '1') });
  if (isReply(f)) return f;
  const { caller, requestId } = f;
  const hours = Number(f.hours);
  const now = deps.clock.now();
  const query = {
    ...(requestId ? { requestId } : { from: new Date(now - hours * 3_600_000).toISOString() }),
    to: new Date(now + 1).toISOString(),
    limit: 300,
    ...(caller ? { caller } : {}),
    ...(f.minStatus === 'any' ? {} : { minStatus: Number(f.minStatus) }),
  };
  const listed = await api(deps, c).GET('/admin/activity', { params: { query } });
  const records = (listed.data ?? []).map((r) => ({ ...r, at: Date.parse(r.at) }));
  const body = html`${filterForm('/operator/activity', 'Filter', html`${input('caller', 'Caller (a DIP ID, or operator:name)', { value: caller })}
${input('requestId', 'Request ID (x-request-id; searched over the whole log)', { value: requestId })}
${select('minStatus', 'Answered', [{ value: 'any', label: 'Any status' }, { value: '400', label: '400 or above (refused)' }, { value: '500', label: '500 or above' }], f.minStatus)}
${select('hours', 'Period', [{ value: '1', label: 'The last hour' }, { value: '24', label: 'The last 24 hours' }], String(hours))}`)}
${listed.data ? '' : listed.response.status === 404 ? alertLine('the API activity log is turned off on this DIP') : alertLine(problemOf(listed.error))}
<p class="muted">Every request to every listener, accepted or refused, newest first (at most 300). A whole period for an auditor: <code>dip audit export</code>; its integrity: <code>dip audit verify</code>.</p>
${activityTable(requestId ? `Request ${requestId}` : caller ? `Requests from ${caller}` : 'Requests', records, null, requestId ? `No request ${requestId} in the log.` : 'No request in this period.')}`;
  return render(c.reply, 200, O, c.req, c.signed, 'API activity', body);
}

async function deadLettersPage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  const f = filtersOf(c, 'Dead letters', { recipient: dipId(), channel: freeText(20), state: oneOf(['dead', 'requeued', 'discarded'], 'dead') });
  if (isReply(f)) return f;
  const recipient = f.recipient || (c.req.method === 'POST' ? field(c.req.body, 'recipient') : '');
  const channel = f.channel || (c.req.method === 'POST' ? field(c.req.body, 'channel') : '');
  const state = f.state;
  const listed = await api(deps, c).GET('/admin/dead-letters', {
    params: { query: { state, limit: 500, ...(recipient ? { recipient } : {}), ...(channel ? { channel } : {}) } },
  });
  const letters = listed.data ?? [];
  const groups = new Map<string, typeof letters>();
  for (const d of letters) {
    const key = `${d.queue.recipientDipId}\u0000${d.queue.channel}`;
    groups.set(key, [...(groups.get(key) ?? []), d]);
  }
  const sections = [...groups.values()].map((ds) => {
    const q = ds[0]!.queue;
    const id = `${q.recipientDipId}-${q.channel}`;
    return html`<form method="post" action="/operator/dead-letters">${csrfField(c.signed)}${hidden('recipientDipId', q.recipientDipId)}${hidden('queueChannel', q.channel)}
<table><caption>${q.recipientDipId} on ${q.channel}: ${ds.length} ${state}</caption><thead><tr><th scope="col">Select</th><th scope="col">Position</th><th scope="col">Transaction</th><th scope="col">Sender</th><th scope="col">Why</th><th scope="col">When</th></tr></thead><tbody>
${ds.map((d) => html`<tr><td><input type="checkbox" name="seq" value="${d.seq}" id="dl-${id}-${d.seq}" aria-label="Select position ${d.seq} (${d.transactionId})"${state === 'dead' ? '' : html` disabled`}></td><td class="num">${d.seq}</td><td><code>${d.transactionId}</code></td><td>${d.senderDipId}</td><td>${deadLetterText(d.reason, d.status, d.detail)}</td><td>${isoOrDash(d.at)}</td></tr>`)}
</tbody></table>
${state === 'dead' ? html`<button type="submit" name="action" value="requeue">Requeue selected<span class="skip"> for ${q.recipientDipId} on ${q.channel}</span></button> <button type="submit" name="action" value="requeue-all" class="secondary">Requeue all<span class="skip"> for ${q.recipientDipId} on ${q.channel}</span></button> <button type="submit" name="action" value="discard" class="danger">Discard selected<span class="skip"> for ${q.recipientDipId} on ${q.channel}</span></button>` : ''}</form>`;
  });
  const body = html`${filterForm('/operator/dead-letters', 'Filter', html`${input('recipient', 'Recipient DIP ID', { value: recipient })}
${input('channel', 'Channel', { value: channel })}
${select('state', 'State', ['dead', 'requeued', 'discarded'].map((s) => ({ value: s, label: s })), state)}`)}
${listed.data ? '' : alertLine(problemOf(listed.error))}
${sections.length ? sections : html`<p>No ${state} letter${recipient || channel ? ' matches' : ''}.</p>`}`;
  return render(c.reply, status, O, c.req, c.signed, 'Dead letters', body, flash);
}

async function deadLetterAction(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const recipientDipId = field(c.req.body, 'recipientDipId');
  const channel = field(c.req.body, 'queueChannel');
  const action = field(c.req.body, 'action');
  const seqs = fields(c.req.body, 'seq').map(Number);
  if (action !== 'requeue-all' && seqs.length === 0) return deadLettersPage(deps, c, { kind: 'error', text: 'select at least one dead letter' }, 400);
  const body = { recipientDipId, channel, ...(action === 'requeue-all' ? {} : { seqs }) };
  const answer = action === 'discard' ? await api(deps, c).POST('/admin/dead-letters/discard', { body }) : await api(deps, c).POST('/admin/dead-letters/requeue', { body });
  if (!answer.data) return deadLettersPage(deps, c, { kind: 'error', text: problemOf(answer.error) }, answer.response.status);
  deps.logger.info({ by: c.signed.account.username, queue: { recipientDipId, channel }, action, ...answer.data }, 'operator portal: dead letters');
  const done = 'discarded' in answer.data ? `${answer.data.discarded} dead letter(s) discarded` : `${answer.data.requeued} dead letter(s) requeued at the tail of ${recipientDipId}'s ${channel} queue`;
  // A position selected on a page that another operator acted on since is said, not silently left out of the count.
  const skipped = answer.data.skipped.slice(0, 20).map((s) => `${s.seq} (${s.reason})`);
  const more = answer.data.skipped.length > 20 ? `, and ${answer.data.skipped.length - 20} more` : '';
  const text = skipped.length > 0 ? `${done}; left alone: ${skipped.join(', ')}${more}` : done;
  return deadLettersPage(deps, c, { kind: 'ok', text }, 200);
}

const JOB_STATES = ['failed', 'running', 'done'] as const;

/** Participants' requeue jobs (GET /admin/requeue-jobs), failed first by default, each failed one with its Resume button. */
async function requeueJobsPage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  const f = filtersOf(c, 'Requeue jobs', { recipient: dipId(), state: oneOf(JOB_STATES, 'failed') });
  if (isReply(f)) return f;
  const listed = await api(deps, c).GET('/admin/requeue-jobs', { params: { query: { state: f.state, limit: 200, ...(f.recipient ? { recipient: f.recipient } : {}) } } });
  const rows = (listed.data ?? []).map(
    (j) =>
      html`<tr><td><code>${j.id}</code></td><td>${j.queue.recipientDipId}</td><td>${j.queue.channel}</td><td>${badge(j.state === 'done' ? 'ok' : j.state === 'failed' ? 'bad' : 'warn', j.state)}</td><td class="num">${j.requeued} of ${j.totalTransactions}</td><td>${j.error ?? '—'}</td><td>${isoOrDash(j.updatedAt)}</td><td>${
        j.state === 'failed' ? actionButton({ action: '/operator/requeue-jobs/resume', csrf: c.signed.claims.csrf, fields: { id: j.id }, label: 'Resume', about: `job ${j.id}` }) : ''
      }</td></tr>`,
  );
  const body = html`${filterForm('/operator/requeue-jobs', 'Filter', html`${input('recipient', 'Recipient DIP ID', { value: f.recipient })}
${select('state', 'State', JOB_STATES.map((s) => ({ value: s, label: s })), f.state)}`)}
<p class="muted">Resume a failed job once what failed it is repaired: it goes on after the last page it requeued, in order, and requeues nothing twice.</p>
${listed.data ? '' : alertLine(problemOf(listed.error))}
${table(`Requeue jobs (${f.state}), newest first`, ['Job', 'Recipient', 'Channel', 'State', 'Requeued', 'Error', 'Last change', 'Action'], rows, `No ${f.state} requeue job.`)}`;
  return render(c.reply, status, O, c.req, c.signed, 'Requeue jobs', body, flash);
}

async function resumeRequeueJob(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const id = field(c.req.body, 'id');
  const answer = await api(deps, c).POST('/admin/requeue-jobs/{id}/resume', { params: { path: { id } } });
  if (!answer.data) return requeueJobsPage(deps, c, { kind: 'error', text: problemOf(answer.error) }, answer.response.status);
  deps.logger.info({ by: c.signed.account.username, job: id }, 'operator portal: requeue job resumed');
  return requeueJobsPage(deps, c, { kind: 'ok', text: `requeue job ${id} resumed after ${answer.data.requeued} message(s) requeued` }, 200);
}

async function certificatesPage(deps: PortalDeps, c: Ctx, issued: Html | null, flash: Flash, status: number): Promise<FastifyReply> {
  const f = filtersOf(c, 'Certificates', { days: integer(1, 3650, 30) });
  if (isReply(f)) return f;
  const days = f.days;
  const expiring = await api(deps, c).GET('/admin/pki/expiring', { params: { query: { days } } });
  const revoked = await api(deps, c).GET('/admin/pki/revoked');
  const expRows = (expiring.data ?? []).map((e) => html`<tr><td>${e.owner}</td><td>${e.subject}</td><td><code>${e.serialNumber}</code></td><td>${e.notAfter}</td><td>${badge(e.daysLeft < 0 ? 'bad' : 'warn', e.daysLeft < 0 ? 'expired' : `${e.daysLeft} days left`)}</td></tr>`);
  const revRows = (revoked.data ?? []).map((r) => html`<tr><td><code>${r.serialNumber}</code></td><td>${r.revokedAt}</td><td>${r.reason}</td></tr>`);
  const body = html`${filterForm('/operator/certificates', 'Expiring certificates', input('days', 'Expiring within (days)', { type: 'number', min: 1, max: 3650, value: days }))}
${table(`Certificates expiring within ${days} days`, ['Owner', 'Subject', 'Serial', 'Not after', 'Left'], expRows, `No certificate expires within ${days} days.`)}
${table('Revoked certificates', ['Serial', 'Revoked at', 'Reason'], revRows, 'No certificate is revoked.')}
<h2>Issue a certificate from a CSR</h2>
<form method="post" action="/operator/certificates/issue">${csrfField(c.signed)}
${input('issue-dipids', 'DIP IDs (comma-separated)', { name: 'dipIds', required: true })}
${textarea('issue-csr', 'Certificate signing request (PEM)', { name: 'csr', required: true })}
${input('issue-days', 'Valid for (days)', { type: 'number', name: 'validDays', min: 1, max: 825, value: 365 })}
<button type="submit">Issue</button></form>
${issued}
<h2>Revoke a certificate</h2>
<form method="post" action="/operator/certificates/revoke">${csrfField(c.signed)}
${textarea('revoke-cert', 'Certificate (PEM)', { name: 'certificate', required: true })}
${select('revoke-reason', 'Reason', ['keyCompromise', 'superseded', 'cessationOfOperation', 'affiliationChanged', 'unspecified'].map((r) => ({ value: r, label: r })), '', { name: 'reason' })}
<button type="submit" class="danger">Revoke</button></form>`;
  return render(c.reply, status, O, c.req, c.signed, 'Certificates', body, flash);
}

async function issueCertificate(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const dipIds = field(c.req.body, 'dipIds').split(',').map((s) => s.trim()).filter(Boolean);
  const answer = await api(deps, c).POST('/admin/pki/issue', { body: { csr: field(c.req.body, 'csr'), dipIds, validDays: Number(field(c.req.body, 'validDays')) || 365 } });
  if (!answer.data) return certificatesPage(deps, c, null, { kind: 'error', text: `not issued: ${problemOf(answer.error)}` }, 400);
  deps.logger.info({ by: c.signed.account.username, dipIds }, 'operator portal: certificate issued');
  return certificatesPage(deps, c, html`<h3>Issued</h3>${codeBlock('Issued certificate (PEM)', answer.data.certificate)}`, { kind: 'ok', text: `certificate issued for ${dipIds.join(', ')}` }, 200);
}

async function revokeCertificate(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const reason = field(c.req.body, 'reason');
  const answer = await api(deps, c).POST('/admin/pki/revoke', { body: { certificate: field(c.req.body, 'certificate'), ...(reason ? { reason } : {}) } });
  if (!answer.data) return certificatesPage(deps, c, null, { kind: 'error', text: `not revoked: ${problemOf(answer.error)}` }, 400);
  deps.logger.info({ by: c.signed.account.username, serial: answer.data.serialNumber }, 'operator portal: certificate revoked');
  return certificatesPage(deps, c, null, { kind: 'ok', text: `certificate ${answer.data.serialNumber} ${answer.data.alreadyRevoked ? 'was already revoked' : 'revoked: refused from the next request'}` }, 200);
}

async function operatorsPage(deps: PortalDeps, c: Ctx, extra: Html | null, flash: Flash, status: number): Promise<FastifyReply> {
  // Who the operators are is the operator API's to tell, to admins only: asked first, as the operator signed in.
  const allowed = await api(deps, c).GET('/admin/operators');
  if (!allowed.data) return refuse(c.reply, O, c.req, c.signed, allowed.response.status, problemOf(allowed.error));
  const operators = await deps.accounts.accounts(null);
  const body = html`${extra}${table('Operator accounts', ['Username', 'Name', 'Administrator', 'Created', 'State', ''], userRows(operators, { action: '/operator/operators/disable', csrf: c.signed, self: c.signed.account.username }))}
${newUserForm('/operator/operators', c.signed, 'none', 'New operator')}`;
  return render(c.reply, status, O, c.req, c.signed, 'Operators', body, flash);
}

async function createOperator(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const made = await api(deps, c).POST('/admin/portal/accounts', { body: { username: field(c.req.body, 'username'), displayName: field(c.req.body, 'displayName'), participantDipId: null } });
  if (!made.data) return operatorsPage(deps, c, null, { kind: 'error', text: problemOf(made.error) }, made.response.status);
  return operatorsPage(deps, c, enrolmentPanel(made.data), { kind: 'ok', text: `portal sign-in for operator ${made.data.username} created` }, 200);
}

/** The journal page's filters, the same for its CSV: the API's own, a period's ends as datetime-local fields (UTC). */
const JOURNAL_FILTERS = { from: dateTime(), to: dateTime(), actor: freeText(100), action: freeText(200), target: freeText(200) } as const;

/** The filters as GET /admin/journal takes them (`to` exclusive: the minute named is in the period). */
function journalQuery(f: Filters<typeof JOURNAL_FILTERS>): { from?: string; to?: string; actor?: string; action?: string; target?: string } {
  return {
    ...(f.from ? { from: new Date(f.from.ms).toISOString() } : {}),
    ...(f.to ? { to: new Date(f.to.lastMs + 1).toISOString() } : {}),
    ...(f.actor ? { actor: f.actor } : {}),
    ...(f.action ? { action: f.action } : {}),
    ...(f.target ? { target: f.target } : {}),
  };
}

/** The record of operator actions (GET /admin/journal): who did what to what, newest first, filtered as the API filters it. */
async function journalPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const f = filtersOf(c, 'Journal', JOURNAL_FILTERS);
  if (isReply(f)) return f;
  const query = journalQuery(f);
  const listed = await api(deps, c).GET('/admin/journal', { params: { query: { limit: JOURNAL_ROWS, ...query } } });
  const q = (name: keyof typeof JOURNAL_FILTERS) => c.req.query[name] ?? '';
  const asked = new URLSearchParams(Object.entries(c.req.query).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '')).toString();
  const body = html`${filterForm('/operator/journal', 'Filter', html`${input('from', 'From (UTC)', { type: 'datetime-local', value: q('from') })}
${input('to', 'Up to (UTC, that minute included)', { type: 'datetime-local', value: q('to') })}
${input('actor', 'Actor (e.g. operator:alice)', { value: q('actor') })}
${input('action', 'Action (e.g. participant.offboard)', { value: q('action') })}
${input('target', 'Participant or other target (a DIP ID, a username, a channel)', { value: q('target') })}`)}
<p><a href="/operator/journal.csv${asked ? `?${asked}` : ''}" download>Download these entries as CSV</a> <span class="muted">(up to ${JOURNAL_CSV_ROWS}, newest first; before and after as JSON in their cells; GET /admin/journal?format=csv gives the same)</span></p>
${listed.data ? '' : alertLine(problemOf(listed.error))}
${journalTable(`Operator actions, newest first (the last ${JOURNAL_ROWS})`, listed.data ?? [], 'No operator action recorded that matches.')}`;
  return render(c.reply, listed.data ? 200 : listed.response.status, O, c.req, c.signed, 'Journal', body);
}

/** The most entries the journal's CSV holds: the operator API's largest page. */
const JOURNAL_CSV_ROWS = 10_000;

/** The journal page's entries as CSV, by the operator API's own CSV (GET /admin/journal?format=csv): the page's filters. */
async function journalCsv(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const f = filtersOf(c, 'Journal', JOURNAL_FILTERS);
  if (isReply(f)) return f;
  const got = await api(deps, c).GET('/admin/journal', { params: { query: { limit: JOURNAL_CSV_ROWS, format: 'csv', ...journalQuery(f) } }, parseAs: 'text' });
  if (got.error !== undefined) return refuse(c.reply, O, c.req, c.signed, got.response.status, problemOf(got.error));
  return c.reply.code(200).header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="journal.csv"').send(got.data);
}

/** Maintenance notices (spec 5.13.5): every notice, and the form to publish one (the operator API's /admin/maintenance). */
async function maintenancePage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  const listed = await api(deps, c).GET('/admin/maintenance');
  const body = html`${publishForm('/operator/maintenance', c.signed)}
${noticeTable('Every notice, newest first', listed.data ?? [], { action: '/operator/maintenance/withdraw', signed: c.signed })}`;
  return render(c.reply, status, O, c.req, c.signed, 'Maintenance', body, flash);
}

async function publishNotice(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const b = c.req.body;
  const channels = field(b, 'channels').split(',').map((x) => x.trim()).filter(Boolean);
  const made = await api(deps, c).POST('/admin/maintenance', { body: { start: utcFromForm(field(b, 'start')), end: utcFromForm(field(b, 'end')), text: field(b, 'text'), ...(channels.length ? { channels } : {}) } });
  if (!made.data) return maintenancePage(deps, c, { kind: 'error', text: problemOf(made.error) }, made.response.status);
  return maintenancePage(deps, c, { kind: 'ok', text: `${made.data.id} published; subscribers are notified by e-mail and webhook` }, 200);
}

async function withdrawNotice(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const id = field(c.req.body, 'id');
  const done = await api(deps, c).POST('/admin/maintenance/{id}/withdraw', { params: { path: { id } }, body: {} });
  if (!done.data) return maintenancePage(deps, c, { kind: 'error', text: problemOf(done.error) }, done.response.status);
  return maintenancePage(deps, c, { kind: 'ok', text: `${id} withdrawn; subscribers are notified` }, 200);
}
