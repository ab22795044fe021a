import type { FastifyInstance, FastifyReply } from 'fastify';
import { receivesOn } from '../domain/channel.js';
import type { Participant } from '../domain/participant.js';
import type { Scope } from '../pipeline/access.js';
import type { Channel } from '../pipeline/channels.js';
import { archivedEventCode, REPLAY_PAGE, type RequeueProgress } from '../pipeline/replay.js';
import { STATUS_CHANNEL } from '../pipeline/status.js';
import { sendTestMessage } from '../pipeline/test-message.js';
import { CopyUnmakeable, CopyWithheld } from '../pipeline/recipient-copy.js';
import { ReplayBudgetSpent } from '../pipeline/replay.js';
import { RefusedError } from '../pipeline/refused.js';
import { configureWebhook, removeWebhook } from '../pipeline/webhook-config.js';
import type { ArchivedMessage, DeliveryAttempt } from '../ports/archive.js';
import type { QueueRef } from '../ports/message-log.js';
import type { ReplayFilter } from '../ports/requeue-jobs.js';
import type { TracedDelivery } from '../ports/traces.js';
import type { ObfuscationRules } from '../domain/obfuscation.js';
import { certificateInfo } from '../security/signature.js';
import type { PortalDeps } from './deps.js';
import { actionButton, alertLine, badge, choice, codeBlock, daysLeftBadge, facts, html, input, isoOrDash, select, table, textarea, when, type Flash, type Html } from './html.js';
import { enrolmentPanel, newUserForm, userRows } from './accounts-view.js';
import { maintenanceMailForm, noticeTable } from './maintenance-pages.js';
import { publicNotice } from '../domain/maintenance.js';
import { csrfField, field, isReply, pageRoutes, refuse, render } from './session.js';
import { asField, asFields, asQuery, journeyLink, levelNote, may, param, scope, USER_REALM, userFilters, userPages, type UserCtx } from './user-realm.js';
import { isUserLevel, LEVEL_POWERS, USER_LEVELS } from '../domain/portal-levels.js';
import { actorOf } from '../pipeline/portal-accounts.js';
import { dateTime, dipId, freeText } from './filters.js';
import { registerUserSelfPages } from './user-self-pages.js';
import { registerUserAuditPages } from './user-audit-pages.js';
import { detailedAudit, messageHeader, reported, reportReply } from './audit-view.js';
import { registerUserParticipationPages } from './user-participation-pages.js';
import { formDateTime } from '../domain/time.js';

const R = USER_REALM;
const DAY_MS = 86_400_000;
/** Rows a search shows at most (per channel and in all). */
const SEARCH_LIMIT = 50;
const ALL_TIME = { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER };

type Ctx = UserCtx;
const OPERATIONS = { needs: 'operations' } as const;
const ADMIN = { needs: 'admin' } as const;

function receivingChannels(deps: PortalDeps, p: Participant): Channel[] {
  return deps.channels.all().filter((ch) => receivesOn(ch, p));
}

const channelOptions = (channels: readonly Channel[]) => channels.map((ch) => ({ value: ch.interfaceId, label: `${ch.interfaceId} ${ch.definition.name}` }));

function verdictBadge(a: Pick<DeliveryAttempt, 'verdict' | 'status'>): Html {
  const kind = a.verdict === 'delivered' ? 'ok' : a.verdict === 'retry' ? 'warn' : 'bad';
  return badge(kind, `${a.verdict}${a.status === null ? '' : ` ${a.status}`}`);
}

/** Why a page that names `as` may not act for it: that participant may not act now (else the page's own scope() decides). */
function actingRefusal(deps: PortalDeps, own: Participant, as: string): string | null {
  if (as === '' || as === own.dipId) return null;
  const named = deps.registry.dipIdInAnyCase(as);
  return deps.registry.participant(named)?.connectionProvider === own.dipId ? deps.registry.refusal(named) : null;
}

/** Registers the user portal's pages. Each handler authorises through `scope` before reading anything. */
export function registerUserPortal(app: FastifyInstance, deps: PortalDeps): void {
  const page = userPages(pageRoutes<Ctx>(app, deps, R, (req, reply, signed) => {
    const own = signed.account.participantDipId ? deps.registry.participant(signed.account.participantDipId) : undefined;
    if (!own) return refuse(reply, R, req, signed, 403, `${signed.account.participantDipId ?? 'this account'} is no longer a registered participant`);
    // A participant that may not act now (suspended) has its users refused every page, reads too, as its
    // API calls are: the portal acts for it (webhooks, provider, certificates, publications). So is a
    // provider's user on any page that names such a client (`as`), whether or not the page acts for it.
    const refused = deps.registry.refusal(own.dipId) ?? actingRefusal(deps, own, param(req, 'as'));
    if (refused !== null) return refuse(reply, R, req, signed, 403, refused);
    return { req, reply, signed, own };
  }));

  page('/', 'GET', async (c) => overview(deps, c));
  page('/webhooks', 'GET', async (c) => webhooksPage(deps, c, null, 200));
  page('/webhooks', 'POST', async (c) => setWebhook(deps, c), OPERATIONS);
  page('/webhooks/remove', 'POST', async (c) => dropWebhook(deps, c), OPERATIONS);
  page('/webhooks/test', 'POST', async (c) => testMessage(deps, c), OPERATIONS);
  page('/webhooks/attempts', 'GET', async (c) => attemptsPage(deps, c));
  page('/messages', 'GET', async (c) => searchPage(deps, c));
  page('/messages/:channel/:transactionId', 'GET', async (c) => journeyPage(deps, c, null));
  page('/messages/:channel/:transactionId/requeue', 'POST', async (c) => replayOne(deps, c, 'requeue'), OPERATIONS);
  page('/messages/:channel/:transactionId/replay', 'POST', async (c) => replayOne(deps, c, 'replay'), OPERATIONS);
  page('/replay', 'GET', async (c) => replayForm(deps, c, null, 200));
  page('/replay', 'POST', async (c) => replayWindow(deps, c), OPERATIONS);
  page('/status-messages', 'GET', async (c) => statusMessages(deps, c));
  page('/certificates', 'GET', async (c) => certificatesPage(deps, c, null));
  page('/certificates/request', 'POST', async (c) => certificateRequest(deps, c), ADMIN);
  page('/certificates/:name', 'GET', async (c) => certificateDownload(deps, c));
  page('/maintenance', 'GET', async (c) => maintenancePage(deps, c, null, 200));
  page('/maintenance/e-mail', 'POST', async (c) => setMaintenanceEmail(deps, c), ADMIN);
  registerUserAuditPages(page, deps);
  registerUserSelfPages(page, deps);
  registerUserParticipationPages(page, deps);
  page('/users', 'GET', async (c) => usersPage(deps, c, null, 200));
  page('/users', 'POST', async (c) => createUser(deps, c), ADMIN);
  page('/users/disable', 'POST', async (c) => disableUser(deps, c), ADMIN);
  page('/users/totp-reset', 'POST', async (c) => resetUserFactor(deps, c), ADMIN);
  page('/users/level', 'POST', async (c) => changeLevel(deps, c), ADMIN);
}

async function overview(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const p = s.caller;
  const identities = deps.registry.identitiesOf(p);
  const rows = deps.channels
    .all()
    .map((ch) => ({ ch, sends: identities.some((i) => i.roles.some((r) => ch.senderRoles.includes(r))), receives: receivesOn(ch, p) }))
    .filter((r) => r.sends || r.receives)
    .map((r) => html`<tr><td>${r.ch.interfaceId}</td><td>${r.ch.definition.name}</td><td>${r.sends ? 'yes' : ''}</td><td>${r.receives ? 'yes' : ''}</td></tr>`);
  const agents = deps.registry.participants().filter((x) => x.connectionProvider === p.dipId);
  const body = html`${facts([
    ['DIP ID', p.dipId],
    ['Organisation', p.organisation],
    ['Roles', p.roles.join(', ')],
    ['DIP Connection Provider', p.connectionProvider ?? 'none: connects itself'],
    ['Connects for', agents.length ? agents.map((a, i) => html`${i ? ', ' : ''}<a href="/portal/?as=${a.dipId}">${a.dipId}</a> (${a.roles.join(', ')})`) : 'no other participant'],
  ])}
<h2>Channels</h2>
${table('Channels this participant sends or receives on', ['Channel', 'Name', 'Sends', 'Receives'], rows, 'No channel: the roles held send and receive on none.')}`;
  return render(c.reply, 200, R, c.req, c.signed, p.dipId === c.own.dipId ? 'Overview' : `Overview: acting for ${p.dipId}`, body);
}

async function webhooksPage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const p = s.caller;
  const channels = receivingChannels(deps, p);
  const queues = [...channels.map((ch) => ch.interfaceId), STATUS_CHANNEL];
  const operations = may(c, 'operations');
  const rows: Html[] = [];
  for (const id of queues) {
    const hook = deps.registry.webhook(p.dipId, id);
    if (!hook) continue;
    const [last] = await deps.archive.attempts({ recipientDipId: p.dipId, channel: id }, 1);
    rows.push(html`<tr><td>${id === STATUS_CHANNEL ? 'Status messages' : id}</td><td><code>${hook.url}</code></td><td class="num">${hook.maxMessageCount}</td>
<td>${last ? html`${verdictBadge(last)} <span class="muted">${isoOrDash(last.startedAt)}</span>` : html`<span class="muted">no call yet</span>`} <a href="/portal/webhooks/attempts?channel=${id}${asQuery(c.own, p, '&')}">attempts<span class="skip"> for ${id}</span></a></td>
<td>${when(id !== STATUS_CHANNEL && operations, () => actionButton({ action: '/portal/webhooks/test', csrf: c.signed.claims.csrf, fields: { ...asFields(c.own, p), channel: id }, label: 'Send a test message', about: `on ${id}`, kind: 'secondary' }))}
${when(operations, () => actionButton({ action: '/portal/webhooks/remove', csrf: c.signed.claims.csrf, fields: { ...asFields(c.own, p), channel: id }, label: 'Remove', about: `the webhook for ${id}`, kind: 'danger' }))}</td></tr>`);
  }
  const body = html`${table('Registered webhooks', ['Channel', 'Callback URL', 'Messages per call', 'Last call', 'Actions'], rows, 'No webhook registered: messages wait to be pulled (or for a webhook).')}
${operations
  ? html`<h2>Register or change a webhook</h2>
<form method="post" action="/portal/webhooks">${csrfField(c.signed)}${asField(c.own, p)}
${select('channel', 'Channel', [...channelOptions(channels), { value: STATUS_CHANNEL, label: 'Status messages (returned to sender)' }], '', { required: true })}
${input('callbackURL', 'Callback URL', { type: 'url', required: true, placeholder: 'https://dip.example.com/webhook' })}
${input('maxMessageCount', 'Messages per call (optional)', { type: 'number', min: 1, max: 10000 })}
<div><button type="submit">Save webhook</button></div>
</form>`
  : levelNote(c, 'operations', 'registering, testing and removing webhooks')}`;
  return render(c.reply, status, R, c.req, c.signed, 'Webhooks', body, flash);
}

/** The queue a webhook form names: a receiving channel ('recipient', as the pubconfig route), or status messages ('self'). */
function webhookScope(deps: PortalDeps, c: Ctx): { caller: Participant; queue: string } | FastifyReply {
  const channelId = field(c.req.body, 'channel');
  if (channelId.toUpperCase() === STATUS_CHANNEL) {
    const s = scope(deps, c, 'self');
    return isReply(s) ? s : { caller: s.caller, queue: STATUS_CHANNEL };
  }
  const s = scope(deps, c, 'recipient', channelId);
  return isReply(s) ? s : { caller: s.caller, queue: s.channel!.interfaceId };
}

async function setWebhook(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const w = webhookScope(deps, c);
  if (isReply(w)) return w;
  const count = field(c.req.body, 'maxMessageCount');
  const body = { callbackURL: field(c.req.body, 'callbackURL'), ...(count ? { maxMessageCount: Number(count) } : {}) };
  if (count && !Number.isInteger(body.maxMessageCount)) return webhooksPage(deps, c, { kind: 'error', text: 'maxMessageCount must be a whole number' }, 400);
  const outcome = await configureWebhook(deps.webhooks, w.caller.dipId, w.queue, body, c.own.dipId, actorOf(c.signed.account));
  deps.logger.info({ username: c.signed.account.username, recipient: w.caller.dipId, channel: w.queue, ok: outcome.ok }, 'portal: webhook set');
  return webhooksPage(deps, c, { kind: outcome.ok ? 'ok' : 'error', text: outcome.help }, outcome.ok ? 200 : 400);
}

async function dropWebhook(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const w = webhookScope(deps, c);
  if (isReply(w)) return w;
  await removeWebhook(deps.webhooks, w.caller.dipId, w.queue, actorOf(c.signed.account));
  deps.logger.info({ username: c.signed.account.username, recipient: w.caller.dipId, channel: w.queue }, 'portal: webhook removed');
  return webhooksPage(deps, c, { kind: 'ok', text: `webhook for ${w.queue} removed: its messages wait to be pulled` }, 200);
}

async function testMessage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const s = scope(deps, c, 'recipient', field(c.req.body, 'channel'));
  if (isReply(s)) return s;
  const { transactionId } = await sendTestMessage(
    { log: deps.log, notify: (q) => deps.delivery.notify(q), clock: deps.clock, dipId: deps.config.dipId, environment: deps.config.environment },
    s.caller.dipId,
    s.channel!,
    c.signed.account.username,
  );
  const link = journeyLink(c.own, s.caller, { channel: s.channel!.interfaceId, transactionId });
  return webhooksPage(deps, c, { kind: 'ok', text: html`Test message <a href="${link}">${transactionId}</a> queued for ${s.channel!.interfaceId}: follow its journey.` }, 200);
}

async function attemptsPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const channelId = param(c.req, 'channel');
  const s = channelId.toUpperCase() === STATUS_CHANNEL ? scope(deps, c, 'self') : scope(deps, c, 'recipient', channelId);
  if (isReply(s)) return s;
  const queue = s.channel?.interfaceId ?? STATUS_CHANNEL;
  const attempts = await deps.archive.attempts({ recipientDipId: s.caller.dipId, channel: queue }, 50);
  const rows = attempts.map((a) => html`<tr><td>${isoOrDash(a.startedAt)}</td><td>${verdictBadge(a)}</td><td class="num">${a.firstSeq}–${a.lastSeq}</td><td class="num">${a.latencyMs} ms</td><td><code>${a.url}</code></td><td>${a.error ?? ''}</td></tr>`);
  return render(c.reply, 200, R, c.req, c.signed, `Webhook calls: ${queue}`, table(`The last ${attempts.length} webhook calls for ${queue}, newest first`, ['Started', 'Answer', 'Positions', 'Took', 'URL', 'Error'], rows, 'No webhook call yet.'));
}


async function searchPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const f = userFilters(c, 'Messages', { as: dipId(), channel: freeText(20), transactionId: freeText(), eventCode: freeText(), from: dateTime(), to: dateTime() });
  if (isReply(f)) return f;
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const p = s.caller;
  const channelId = f.channel;
  let channels: Channel[];
  if (channelId) {
    const one = scope(deps, c, 'recipient', channelId);
    if (isReply(one)) return one;
    channels = [one.channel!];
  } else {
    const archived = new Set(await deps.archive.archivedChannels());
    channels = receivingChannels(deps, p).filter((ch) => archived.has(ch.interfaceId));
  }
  const tx = f.transactionId;
  const eventCode = f.eventCode;
  const from = f.from?.ms ?? null;
  const to = f.to?.lastMs ?? null;
  const found: ArchivedMessage[] = [];
  for (const ch of channels) {
    const window = from === null && to === null && !tx ? { fromMs: deps.clock.now() - DAY_MS } : { fromMs: from ?? undefined, toMs: to ?? undefined };
    found.push(...(await deps.archive.findArchived({ recipientDipId: p.dipId, channel: ch.interfaceId, ...window, eventCode: eventCode ? archivedEventCode(eventCode, ch) : undefined, transactionIds: tx ? [tx] : undefined, limit: SEARCH_LIMIT })));
  }
  found.sort((a, b) => b.receivedAt - a.receivedAt);
  const shown = found.slice(0, SEARCH_LIMIT);
  const rows = shown.map((m) => html`<tr><td>${isoOrDash(m.receivedAt)}</td><td>${m.channel}</td><td>${m.eventCode}</td><td>${m.senderDipId} (${m.senderRole})</td><td><a href="${journeyLink(c.own, p, m)}">${m.transactionId}</a></td></tr>`);
  const body = html`<form method="get" action="/portal/messages" class="search">${asField(c.own, p)}
<fieldset><legend>Find messages received</legend>
${input('transactionId', 'Transaction ID', { value: tx })}
${select('channel', 'Channel', [{ value: '', label: 'Every channel' }, ...receivingChannels(deps, p).map((ch) => ({ value: ch.interfaceId, label: ch.interfaceId }))], channelId)}
${input('eventCode', 'Event code', { value: eventCode })}
${input('from', 'Received from (UTC)', { type: 'datetime-local', value: param(c.req, 'from') })}
${input('to', 'Received up to (UTC)', { type: 'datetime-local', value: param(c.req, 'to') })}
<div><button type="submit">Search</button></div></fieldset></form>
<p class="muted">Without a transaction ID or dates, the last 24 hours are searched. At most ${SEARCH_LIMIT} messages are shown.</p>
${table(`${shown.length} message(s) found`, ['Received', 'Channel', 'Event', 'Sender', 'Transaction'], rows, 'No message matches.')}`;
  return render(c.reply, 200, R, c.req, c.signed, 'Messages', body);
}

/** The recipient's own archived message named by the URL, after the same check as the replay route. */
async function ownMessage(deps: PortalDeps, c: Ctx): Promise<{ scope: Scope; queue: QueueRef; message: ArchivedMessage } | FastifyReply> {
  const s = scope(deps, c, 'recipient', c.req.params.channel);
  if (isReply(s)) return s;
  const queue = { recipientDipId: s.caller.dipId, channel: s.channel!.interfaceId };
  const tx = c.req.params.transactionId ?? '';
  const [message] = await deps.archive.findArchived({ ...queue, transactionIds: [tx], limit: 1 });
  // The same answer whether the transaction does not exist or was addressed to someone else.
  if (!message) return refuse(c.reply, R, c.req, c.signed, 404, `no message ${tx} addressed to ${queue.recipientDipId} on ${queue.channel}`);
  return { scope: s, queue, message };
}

/**
 * The detailed audit of one message (spec 5.11.3, figure 19), for its sender or a recipient: the
 * workflow from the API's answer to each recipient's outcome, read from the reports API's trace for the
 * participant as viewer (so a recipient sees its own copy only, and another participant's message is
 * answered as if it did not exist). A recipient also gets its copy as delivered (obfuscated for its role,
 * encrypted for it) and the replay actions.
 */
async function journeyPage(deps: PortalDeps, c: Ctx, flash: Flash, extra: Html | null = null): Promise<FastifyReply> {
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const p = s.caller;
  const tx = c.req.params.transactionId ?? '';
  const channelId = c.req.params.channel ?? '';
  const traced = await reported(() => deps.reports.trace({ kind: 'participant', dipId: p.dipId }, { transactionId: tx }, ALL_TIME.fromMs, ALL_TIME.toMs));
  if (traced instanceof RefusedError) return refuse(reportReply(c.reply, traced.status), R, c.req, c.signed, traced.status, traced.message);
  const m = traced.find((x) => x.transactionId === tx && x.channel.toUpperCase() === channelId.toUpperCase());
  // The same answer whether the transaction does not exist or is another participant's.
  if (!m) return refuse(c.reply, R, c.req, c.signed, 404, `no message ${tx} on ${channelId} that ${p.dipId} sent or received`);
  let received: Html = html`<h2>Header and payload</h2>${messageHeader(m)}<p class="muted">${p.dipId} sent this message: each recipient's copy of its payload was made for that recipient (fields obfuscated for its role, encrypted for it), so none is shown here.</p>`;
  if (m.deliveries.some((d) => d.recipient === p.dipId)) {
    const found = await ownMessage(deps, c);
    if (isReply(found)) return found;
    const { queue, message: archived } = found;
    const made = await deliveredRules(deps, queue.channel, m.deliveries.find((d) => d.recipient === p.dipId)!);
    // Held back (the participant's certificate is revoked or expired): the page says why instead of the copy.
    const copy = await Promise.resolve(deps.copies.copyFor(queue, archived, made.rules)).catch((e: unknown) => {
      if (e instanceof CopyWithheld || e instanceof CopyUnmakeable) return e.message;
      throw e;
    });
    const pretty = (() => {
      try {
        return JSON.stringify(JSON.parse(copy), null, 2);
      } catch {
        return copy;
      }
    })();
    const action = (what: 'requeue' | 'replay', label: string, kind?: 'secondary') =>
      actionButton({ action: `/portal/messages/${encodeURIComponent(m.channel)}/${encodeURIComponent(m.transactionId)}/${what}`, csrf: c.signed.claims.csrf, fields: asFields(c.own, p), label, kind });
    received = html`<h2>Replay</h2>
${may(c, 'operations') ? html`<p>${action('requeue', 'Requeue to my webhook')} ${action('replay', 'Replay here (show the re-issued copy)', 'secondary')}</p>` : levelNote(c, 'operations', 'replaying and requeuing')}
${extra}
<h2>Header and payload</h2>
${messageHeader(m)}
<details><summary>Message as delivered to ${queue.recipientDipId}</summary>
${codeBlock(`Message as delivered to ${queue.recipientDipId}`, pretty)}
<p class="muted">${made.note}</p></details>`;
  }
  const body = html`${detailedAudit(m, param(c.req, 'recipient') || null, journeyLink(c.own, p, m).split('?')[0]!, asField(c.own, p), deps.config.dipId)}
${received}`;
  return render(c.reply, 200, R, c.req, c.signed, `Journey of ${m.transactionId}`, body, flash);
}

/**
 * The obfuscation rules a recipient's copy was made with, and what the page says of them. The DIP keeps the
 * message, not each recipient's copy: the copy is made again, with the rules in force when it was last sent
 * (its last webhook call or pull), since an operator may have changed them since (PATCH /admin/channels).
 * Not sent yet: the rules in force now, which its delivery will use unless they change.
 */
async function deliveredRules(deps: PortalDeps, channel: string, delivery: TracedDelivery): Promise<{ rules: ObfuscationRules | undefined; note: string }> {
  const sentAt = delivery.attempts.at(-1)?.startedAt ?? delivery.deliveredAt;
  if (sentAt === null) return { rules: undefined, note: `Not sent yet: shown with ${channel}'s obfuscation rules in force now.` };
  const then = await deps.channelSettings.obfuscationAt(channel, sentAt);
  const version = then.since === null ? `the configuration file's (settings version 0)` : `those of settings version ${then.version} (in force since ${new Date(then.since).toISOString()})`;
  return { rules: then.rules, note: `Made with ${channel}'s obfuscation rules in force when it was sent at ${new Date(sentAt).toISOString()}: ${version}.` };
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');


async function replayOne(deps: PortalDeps, c: Ctx, action: 'replay' | 'requeue'): Promise<FastifyReply> {
  const found = await ownMessage(deps, c);
  if (isReply(found)) return found;
  const filter: ReplayFilter = { ...ALL_TIME, eventCode: null, mpan: null, transactionIds: [found.message.transactionId] };
  const outcome = await runReplay(deps, c, found.queue, filter, action);
  return journeyPage(deps, c, outcome.flash, outcome.copies);
}

/** Replay or requeue through the same Replay service the API's replay and requeue routes call. */
async function runReplay(deps: PortalDeps, c: Ctx, queue: QueueRef, filter: ReplayFilter, action: 'replay' | 'requeue'): Promise<{ flash: { kind: 'ok' | 'error'; text: string }; copies: Html | null }> {
  deps.logger.info({ username: c.signed.account.username, queue, action }, 'portal: replay');
  try {
    return await replayOrRequeue(deps, queue, filter, action);
  } catch (e) {
    // The participant's budget of copies (config replayCopiesPerHour), as the API answers 429.
    if (e instanceof ReplayBudgetSpent || e instanceof CopyWithheld || e instanceof CopyUnmakeable) return { flash: { kind: 'error', text: e.message }, copies: null };
    throw e;
  }
}

async function replayOrRequeue(deps: PortalDeps, queue: QueueRef, filter: ReplayFilter, action: 'replay' | 'requeue'): Promise<{ flash: { kind: 'ok' | 'error'; text: string }; copies: Html | null }> {
  if (action === 'requeue') {
    const r = await deps.replay.requeue(queue, filter);
    const text = 'requeued' in r ? `${r.requeued} message(s) requeued to the webhook under new R- transaction IDs${skippedWords(r.unreadable.length)}` : `more than a page matches: requeue job ${r.job.id} works through them behind your live traffic (follow it under Requeue jobs on the Replay page)`;
    return { flash: { kind: 'ok', text }, copies: null };
  }
  const pageOf = await deps.replay.replay(queue, filter);
  if (pageOf.copies.length === 0) return { flash: { kind: 'error', text: `nothing to replay: no archived message matches${skippedWords(pageOf.unreadable.length)}` }, copies: null };
  const shown = pageOf.copies.slice(0, 5).map((t) => JSON.stringify(JSON.parse(t), null, 2));
  return {
    flash: { kind: 'ok', text: `${pageOf.copies.length} message(s) replayed${pageOf.next === null ? '' : ' (the first page; narrow the window for the rest)'}${skippedWords(pageOf.unreadable.length)}` },
    copies: html`<h2>Replayed copies${pageOf.copies.length > 5 ? ' (the first five)' : ''}</h2>${shown.map((t, i) => codeBlock(`Replayed copy ${i + 1}`, t))}`,
  };
}

/** Archived messages a replay or requeue skipped (their stored copy does not open), in the portal's words. */
function skippedWords(n: number): string {
  return n === 0 ? '' : `; ${n} archived message(s) skipped: their stored copy could not be opened (the operator has them in the log)`;
}

async function replayForm(deps: PortalDeps, c: Ctx, flash: Flash, status: number, copies: Html | null = null): Promise<FastifyReply> {
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const form = html`<form method="post" action="/portal/replay">${csrfField(c.signed)}${asField(c.own, s.caller)}
<fieldset><legend>Messages to replay or requeue</legend>
${select('channel', 'Channel', channelOptions(receivingChannels(deps, s.caller)), '', { required: true })}
${input('from', 'Received from (UTC)', { type: 'datetime-local', required: true })}
${input('to', 'Received up to (UTC)', { type: 'datetime-local', required: true })}
${input('eventCode', 'Event code (optional)')}
${input('mpan', 'MPAN (optional)', { inputmode: 'numeric', pattern: '[0-9]{13}' })}
</fieldset>
<fieldset><legend>Action</legend>
${choice('radio', 'requeue', 'action', 'requeue', 'Requeue: send them to my webhook again', true)}
${choice('radio', 'replay', 'action', 'replay', 'Replay: show them here')}
</fieldset>
<button type="submit">Go</button></form>`;
  const body = html`${may(c, 'operations') ? form : levelNote(c, 'operations', 'replaying and requeuing')}${copies}
${await requeueJobsTable(deps, s.caller.dipId)}`;
  return render(c.reply, status, R, c.req, c.signed, 'Replay and requeue', body, flash);
}

/** Jobs a requeue page lists at most (newest first). */
const JOBS_SHOWN = 20;
const JOB_BADGE: Readonly<Record<RequeueProgress['status'], 'ok' | 'warn' | 'bad'>> = { Completed: 'ok', Processing: 'warn', Failed: 'bad' };

/**
 * The participant's own requeue jobs (a requeue of more than a page, from here or the API), as the API's
 * GET …/requeue/{recipient-id}/{job-id} reports each: before, the portal started them and could not show
 * how one went. Only the caller's: the jobs are read by its DIP ID, whatever the request names.
 */
async function requeueJobsTable(deps: PortalDeps, recipientDipId: string): Promise<Html> {
  const heading = html`<h2>Requeue jobs</h2>
<p class="muted">A requeue of more than ${REPLAY_PAGE.toLocaleString('en-GB')} messages runs as a job behind your live traffic. A failed job is resumed by the DIP's operator from where it stopped (nothing is requeued twice): ask them with its job ID.</p>`;
  let rows: Html[];
  try {
    const jobs = await deps.replay.jobsOf(recipientDipId, JOBS_SHOWN);
    rows = await Promise.all(
      jobs.map(async (job) => {
        const p = await deps.replay.progress(job);
        // The cause is the store's own text (a table, a file, an engine's error): the operator's to read
        // (GET /admin/requeue-jobs), not a participant's; the published RequeueStatus has no such field either.
        const stopped = job.error === null ? '—' : "stopped on a fault in the DIP: its operator has the cause";
        return html`<tr><td><code>${job.id}</code></td><td>${job.queue.channel}</td><td>${badge(JOB_BADGE[p.status], p.status)}</td><td>${p.processedTransactions} of ${p.totalTransactions} (${p.percentComplete}%)</td><td>${stopped}</td><td>${isoOrDash(job.createdAt)}</td><td>${isoOrDash(job.updatedAt)}</td></tr>`;
      }),
    );
  } catch {
    // A store that cannot be read now takes the list away, not the replay form above it.
    return html`${heading}${alertLine('Your requeue jobs cannot be listed right now (the DIP cannot read its store); the form above still works. Try again in a moment.')}`;
  }
  return html`${heading}
${table(`Your requeue jobs, newest first (at most ${JOBS_SHOWN})`, ['Job', 'Channel', 'Status', 'Requeued', 'Error', 'Started', 'Last change'], rows, 'No requeue job.')}`;
}

async function replayWindow(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const s = scope(deps, c, 'recipient', field(c.req.body, 'channel'));
  if (isReply(s)) return s;
  const fromField = formDateTime(field(c.req.body, 'from'));
  const toField = formDateTime(field(c.req.body, 'to'));
  if (fromField === null || toField === null) return replayForm(deps, c, { kind: 'error', text: 'from and to must be date-times that exist (UTC)' }, 400);
  const from = fromField.ms;
  // The whole minute (or second) the end names, as the API's datetimeTo.
  const to = toField.lastMs;
  if (from > to) return replayForm(deps, c, { kind: 'error', text: 'from is after to' }, 400);
  const mpan = field(c.req.body, 'mpan').trim();
  if (mpan && !/^\d{13}$/.test(mpan)) return replayForm(deps, c, { kind: 'error', text: 'an MPAN is 13 digits' }, 400);
  const eventCode = field(c.req.body, 'eventCode').trim();
  // As the API takes it: brackets and case do not matter (archivedEventCode).
  const filter: ReplayFilter = { fromMs: from, toMs: to, eventCode: eventCode ? archivedEventCode(eventCode, s.channel!) : null, mpan: mpan || null, transactionIds: null };
  const action = field(c.req.body, 'action') === 'replay' ? 'replay' : 'requeue';
  const outcome = await runReplay(deps, c, { recipientDipId: s.caller.dipId, channel: s.channel!.interfaceId }, filter, action);
  return replayForm(deps, c, outcome.flash, outcome.flash.kind === 'ok' ? 200 : 400, outcome.copies);
}

async function statusMessages(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const found = await deps.archive.findArchived({ recipientDipId: s.caller.dipId, channel: STATUS_CHANNEL, fromMs: deps.clock.now() - 14 * DAY_MS, limit: 200 });
  const rows = found.reverse().map((m) => {
    let entry: Record<string, unknown> = {};
    try {
      entry = JSON.parse(m.outbound) as Record<string, unknown>;
    } catch {
      // An unreadable entry still shows when it came.
    }
    const about = typeof entry.transactionID === 'string' ? entry.transactionID : '';
    return html`<tr><td>${isoOrDash(m.receivedAt)}</td><td>${m.senderDipId}</td><td><code>${about}</code></td><td>${text(entry.message)}</td><td>${text(entry.help)}</td></tr>`;
  });
  return render(c.reply, 200, R, c.req, c.signed, 'Status messages', table('Status messages about messages sent, the last 14 days, newest first', ['Received', 'From', 'About transaction', 'Message', 'Help'], rows, 'No status message in the last 14 days.'));
}

const DIP_CERTIFICATES = ['dip-ca', 'dip-signing', 'dip-encryption'] as const;

async function certificatesPage(deps: PortalDeps, c: Ctx, issued: Html | null, flash: Flash = null, status = 200): Promise<FastifyReply> {
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const p = s.caller;
  const info = certificateInfo(p.certificatePem);
  const body = html`<h2>Registered certificate</h2>
${facts([
  ['Subject', info.subject],
  ['Issuer', info.issuer],
  ['Serial', html`<code>${info.serialNumber}</code>`],
  ['SHA-256', html`<code>${info.fingerprint256}</code>`],
  ['Valid', html`${isoOrDash(info.notBefore.getTime())} to ${isoOrDash(info.notAfter.getTime())} ${daysLeftBadge(info.notAfter.getTime(), deps.clock.now())}`],
  ...(p.previous ? [['Previous certificate', `still signs until ${isoOrDash(p.previous.validUntil)}`] as const] : []),
])}
<p><a href="/portal/certificates/participant${asQuery(c.own, p)}" download>Download the registered certificate (PEM)</a></p>
<h2>The DIP's certificates</h2>
<ul><li><a href="/portal/certificates/dip-ca" download>Environment CA</a> (verify the DIP's TLS and signatures)</li><li><a href="/portal/certificates/dip-signing" download>DIP signing certificate</a></li><li><a href="/portal/certificates/dip-encryption" download>DIP encryption certificate</a> (security pattern 2)</li></ul>
${when(may(c, 'admin') && p.dipId === c.own.dipId, () => html`<h2>Request a certificate</h2>
<form method="post" action="/portal/certificates/request">${csrfField(c.signed)}
${textarea('csr', 'Certificate signing request (PEM): your key stays with you', { required: true, placeholder: '-----BEGIN CERTIFICATE REQUEST-----' })}
<button type="submit">Issue a certificate for ${p.dipId}</button></form>
<p class="muted">The certificate is issued for ${p.dipId} by the environment's CA. It becomes the registered one when the DIP's operator registers it (dip participant rotate-cert), with an overlap for moving over.</p>`)}
${levelNote(c, 'admin', 'requesting a certificate')}
${issued}`;
  return render(c.reply, status, R, c.req, c.signed, 'Certificates', body, flash);
}

const NO_CSR = 'csr is required: paste the PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----) of a key you hold';

async function certificateRequest(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  // An empty field is not "no CSR, make me a key": the certificate would be for a key nobody holds.
  const csr = field(c.req.body, 'csr');
  if (csr.trim() === '') return certificatesPage(deps, c, null, { kind: 'error', text: NO_CSR }, 400);
  // The participant's own DIP ID, never one from the form or the CSR: the operator API issues it.
  let certificate: string;
  try {
    certificate = await deps.issueCertificate(csr, c.own.dipId, c.own.organisation);
  } catch (e) {
    return certificatesPage(deps, c, null, { kind: 'error', text: `the CSR was refused: ${(e as Error).message}` }, 400);
  }
  deps.logger.info({ username: c.signed.account.username, dipId: c.own.dipId }, 'portal: certificate issued from a CSR');
  return certificatesPage(deps, c, html`<h2>Issued certificate</h2>${codeBlock('Issued certificate (PEM)', certificate)}`, { kind: 'ok', text: 'certificate issued: copy it from below' });
}

async function certificateDownload(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const name = c.req.params.name ?? '';
  let pem: string;
  if (name === 'participant') {
    const s = scope(deps, c, 'self');
    if (isReply(s)) return s;
    pem = s.caller.certificatePem;
  } else if ((DIP_CERTIFICATES as readonly string[]).includes(name)) {
    pem = name === 'dip-ca' ? deps.certificates.ca : name === 'dip-signing' ? deps.certificates.signing : deps.certificates.encryption;
  } else {
    return refuse(c.reply, R, c.req, c.signed, 404, `no certificate '${name}'`);
  }
  return c.reply.header('content-disposition', `attachment; filename="${name}.pem"`).type('application/x-pem-file').send(pem);
}

async function usersPage(deps: PortalDeps, c: Ctx, extra: Html | null, status: number, flash: Flash = null): Promise<FastifyReply> {
  const accounts = await deps.accounts.accounts(c.own.dipId);
  const admin = may(c, 'admin');
  const manage = { action: '/portal/users/disable', csrf: c.signed, self: c.signed.account.username, resetAction: '/portal/users/totp-reset', levelAction: '/portal/users/level' };
  const body = html`${extra}${table(`Users of ${c.own.dipId}`, ['Username', 'Name', 'Level', 'Created', 'State', ''], userRows(accounts, admin ? manage : null))}
<h2>Levels</h2>
${facts(USER_LEVELS.map((l) => [l, LEVEL_POWERS[l]] as const))}
${admin
  ? html`<p class="muted">A new user, or one whose authenticator was reset, sets up their authenticator app and chooses their own password at their next sign-in. Your own authenticator and level are changed by another administrator of ${c.own.dipId}. A change of level signs the user out everywhere.</p>${newUserForm('/portal/users', c.signed, 'levels')}`
  : levelNote(c, 'admin', 'creating and disabling users, setting their levels and resetting their authenticators')}`;
  return render(c.reply, status, R, c.req, c.signed, 'Users', body, flash);
}

/** The level a form names, or null when it names none of them. */
function levelField(c: Ctx): (typeof USER_LEVELS)[number] | null {
  const level = field(c.req.body, 'level');
  return isUserLevel(level) ? level : null;
}

const NO_LEVEL = `level must be one of ${USER_LEVELS.join(', ')}`;

async function createUser(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const level = levelField(c);
  if (level === null) return usersPage(deps, c, null, 400, { kind: 'error', text: NO_LEVEL });
  const made = await deps.accounts.createUsersUser(c.signed.account, { username: field(c.req.body, 'username'), displayName: field(c.req.body, 'displayName'), level });
  if ('problem' in made) return made.status === 403 ? refuse(c.reply, R, c.req, c.signed, 403, made.problem) : usersPage(deps, c, null, made.status, { kind: 'error', text: made.problem });
  if (made.journalError) deps.logger.error({ err: made.journalError, username: made.account.username, by: c.signed.account.username }, 'could not journal a user created');
  deps.logger.info({ username: made.account.username, level, by: c.signed.account.username, participant: c.own.dipId }, 'portal: user created');
  return usersPage(deps, c, enrolmentPanel({ ...made, ...made.account }), 200, { kind: 'ok', text: `user ${made.account.username} created (${level})` });
}

/** An administrator changes a user's level (PortalAccountService setUsersLevel: journalled, the user signed out everywhere). */
async function changeLevel(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const level = levelField(c);
  if (level === null) return usersPage(deps, c, null, 400, { kind: 'error', text: NO_LEVEL });
  const changed = await deps.accounts.setUsersLevel(c.signed.account, field(c.req.body, 'username'), level);
  if ('problem' in changed) return changed.status === 403 ? refuse(c.reply, R, c.req, c.signed, 403, changed.problem) : usersPage(deps, c, null, changed.status, { kind: 'error', text: changed.problem });
  if (changed.journalError) deps.logger.error({ err: changed.journalError, username: changed.account.username, by: c.signed.account.username }, 'could not journal a level change');
  deps.logger.info({ username: changed.account.username, level, by: c.signed.account.username, participant: c.own.dipId }, 'portal: user level changed');
  return usersPage(deps, c, null, 200, { kind: 'ok', text: `${changed.account.username} is now ${level}: signed out everywhere` });
}

/**
 * A user of the participant lost their authenticator: an administrator resets it (PortalAccountService
 * resetUsersFactor: only the participant's own users, not the administrator's own, journalled) and is
 * shown a new first password once; the user's next sign-in sets up a new authenticator.
 */
async function resetUserFactor(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const reset = await deps.accounts.resetUsersFactor(c.signed.account, field(c.req.body, 'username'));
  if ('problem' in reset) return reset.status === 403 ? refuse(c.reply, R, c.req, c.signed, 403, reset.problem) : usersPage(deps, c, null, reset.status, { kind: 'error', text: reset.problem });
  if (reset.journalError) deps.logger.error({ err: reset.journalError, username: reset.account.username, by: c.signed.account.username }, 'could not journal a TOTP reset');
  deps.logger.info({ username: reset.account.username, by: c.signed.account.username, participant: c.own.dipId }, 'portal: user authenticator reset');
  return usersPage(deps, c, enrolmentPanel({ ...reset, ...reset.account }, 'reset'), 200, { kind: 'ok', text: `authenticator of ${reset.account.username} reset: signed out everywhere` });
}

async function disableUser(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const username = field(c.req.body, 'username');
  const target = await deps.accounts.account('user', username);
  // Another participant's user is answered as if it did not exist (an operator is no user: not looked up).
  if (!target || target.participantDipId !== c.own.dipId) return usersPage(deps, c, null, 404, { kind: 'error', text: `${c.own.dipId} has no user '${username}'` });
  const disable = field(c.req.body, 'disable') !== 'no';
  const changed = await deps.accounts.setUsersDisabled(c.signed.account, target, disable);
  if (!changed) return usersPage(deps, c, null, 404, { kind: 'error', text: `${c.own.dipId} has no user '${username}'` });
  if ('problem' in changed) return usersPage(deps, c, null, changed.status, { kind: 'error', text: changed.problem });
  if (changed.journalError) deps.logger.error({ err: changed.journalError, username: target.username, by: c.signed.account.username }, 'could not journal a user disabled or enabled');
  return usersPage(deps, c, null, 200, { kind: 'ok', text: `user ${target.username} ${disable ? 'disabled: signed out everywhere' : 'enabled'}` });
}

/** Maintenance announced (spec 5.13.5), and where the participant's administrators are e-mailed notices: its administrators change it. */
async function maintenancePage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  const email = deps.registry.profile(c.own.dipId).profile.maintenanceEmail ?? null;
  const body = html`${noticeTable('Maintenance announced and not yet over, soonest first', (await deps.maintenance.current()).map(publicNotice))}
${maintenanceMailForm('/portal/maintenance/e-mail', c.signed, email, c.signed.account.admin)}`;
  return render(c.reply, status, R, c.req, c.signed, 'Maintenance', body, flash);
}

async function setMaintenanceEmail(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  if (!c.signed.account.admin) return maintenancePage(deps, c, { kind: 'error', text: `only ${c.own.dipId}'s administrators change where maintenance notices are e-mailed` }, 403);
  const stop = field(c.req.body, 'stop') === 'yes';
  const email = stop ? null : field(c.req.body, 'email').trim();
  try {
    await deps.selfService.setMaintenanceEmail(c.own, email, c.signed.account);
  } catch (e) {
    if (e instanceof RefusedError) return maintenancePage(deps, c, { kind: 'error', text: e.message }, e.status);
    throw e;
  }
  return maintenancePage(deps, c, { kind: 'ok', text: email === null ? 'maintenance notices are no longer e-mailed to your administrators' : `maintenance notices are e-mailed to ${email}` }, 200);
}
