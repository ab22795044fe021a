import type { FastifyReply } from 'fastify';
import type { Participant } from '../domain/participant.js';
import { refusalOf } from '../pipeline/refused.js';
import type { SelfView } from '../pipeline/self-service.js';
import type { PortalDeps } from './deps.js';
import { badge, facts, hidden, html, input, table, when, type Flash, type Html } from './html.js';
import { csrfField, field, isReply, render } from './session.js';
import { asFields, levelNote, may, scope, USER_REALM as R, type UserCtx as Ctx, type UserPageRegistrar } from './user-realm.js';

/**
 * The user portal's self-service pages (spec 5.12.1 "User Roles Request" and "Agent Management"): the
 * optional roles and opt-in channels the participant may sign up for, and the DIP Connection Provider it
 * nominates. Every change is made by the participant API's own functions (src/pipeline/self-service.ts,
 * deps.selfService), so it is checked, refused and journalled as the signed call is; the journal names
 * the user who acted. Roles and channels are the user's participant's, or (`as`, the API's rule through
 * `scope`) those of a participant that nominated it as its DIP Connection Provider; the nomination is
 * the user's own participant's alone, as in the API. Only the participant's administrators change
 * anything (as they alone request certificates and manage users); the portal adds a confirmation.
 */

const ROLES_PAGE = '/portal/roles-and-channels';
const PROVIDER_PAGE = '/portal/connection-provider';

export function registerUserParticipationPages(page: UserPageRegistrar, deps: PortalDeps): void {
  page('/roles-and-channels', 'GET', async (c) => rolesPage(deps, c, null, 200));
  page('/roles-and-channels', 'POST', async (c) => changeRoleOrChannel(deps, c), { needs: 'admin' });
  page('/connection-provider', 'GET', async (c) => providerPage(deps, c, null, 200));
  page('/connection-provider', 'POST', async (c) => changeProvider(deps, c), { needs: 'admin' });
}

/** The user's own participant as the registry holds it now (a change just made included). */
const current = (deps: PortalDeps, c: Ctx): Participant => deps.registry.participant(c.own.dipId) ?? c.own;

/**
 * A change's form: its fields, a confirmation box the browser requires ticked (and the handler checks: a
 * form posted by hand is not confirmed by leaving the box out) and a button saying what it does. Grouped
 * under the button's text, so that each row's box is told apart by screen readers.
 */
function confirmedForm(c: Ctx, o: { action: string; id: string; fields: Readonly<Record<string, string>>; label: string; confirm: string; kind?: 'danger'; controls?: Html }): Html {
  return html`<form method="post" action="${o.action}">${csrfField(c.signed)}${Object.entries(o.fields).map(([k, v]) => hidden(k, v))}<fieldset><legend>${o.label}</legend>${o.controls ?? null}
<div><input type="checkbox" id="confirm-${o.id}" name="confirm" value="yes" required> <label for="confirm-${o.id}" class="inline-label">I confirm: ${o.confirm}</label></div>
<button type="submit"${o.kind ? html` class="${o.kind}"` : null}>${o.label}</button></fieldset></form>`;
}

const CHANGES = {
  role: {
    join: { run: (deps: PortalDeps, p: Participant, name: string, c: Ctx) => deps.selfService.joinRole(p, name, c.signed.account), done: (dipId: string, name: string) => `${dipId} signed up for the role ${name}` },
    leave: { run: (deps: PortalDeps, p: Participant, name: string, c: Ctx) => deps.selfService.leaveRole(p, name, c.signed.account), done: (dipId: string, name: string) => `${dipId} left the role ${name}` },
  },
  channel: {
    join: { run: (deps: PortalDeps, p: Participant, name: string, c: Ctx) => deps.selfService.joinChannel(p, name, c.signed.account), done: (dipId: string, name: string) => `${dipId} opted into ${name}: it is sent every message there from now on` },
    leave: { run: (deps: PortalDeps, p: Participant, name: string, c: Ctx) => deps.selfService.leaveChannel(p, name, c.signed.account), done: (dipId: string, name: string) => `${dipId} left ${name}` },
  },
} as const;

function roleRows(c: Ctx, p: Participant, v: SelfView): Html[] {
  const admin = may(c, 'admin');
  const as = asFields(c.own, p);
  return [...new Set([...v.availableOptionalRoles, ...v.optionalRoles])].sort().map((role) => {
    const signedUp = v.optionalRoles.includes(role);
    // Held without signing up: given by the central register or the operator, and changed only there.
    const given = v.roles.includes(role) && !signedUp;
    const state = signedUp ? badge('ok', 'signed up') : given ? badge('ok', 'held (given by the register or the operator)') : 'not held';
    const form = !admin || given
      ? ''
      : signedUp
        ? confirmedForm(c, { action: ROLES_PAGE, id: `role-${role}`, fields: { ...as, kind: 'role', change: 'leave', name: role }, label: `Leave ${role}`, confirm: `${v.dipId} gives up ${role} and what it sends and receives as one`, kind: 'danger' })
        : confirmedForm(c, { action: ROLES_PAGE, id: `role-${role}`, fields: { ...as, kind: 'role', change: 'join', name: role }, label: `Sign up for ${role}`, confirm: `${v.dipId} takes on ${role}: it sends and receives on ${role}'s channels` });
    return html`<tr><td>${role}</td><td>${state}</td><td>${form}</td></tr>`;
  });
}

function channelRows(deps: PortalDeps, c: Ctx, p: Participant, v: SelfView): Html[] {
  const admin = may(c, 'admin');
  const as = asFields(c.own, p);
  return [...new Set([...v.optInChannels, ...v.channels])].sort().map((id) => {
    const optedIn = v.channels.includes(id);
    const form = !admin
      ? ''
      : optedIn
        ? confirmedForm(c, { action: ROLES_PAGE, id: `channel-${id}`, fields: { ...as, kind: 'channel', change: 'leave', name: id }, label: `Leave ${id}`, confirm: `${v.dipId} is no longer sent every message on ${id}`, kind: 'danger' })
        : confirmedForm(c, { action: ROLES_PAGE, id: `channel-${id}`, fields: { ...as, kind: 'channel', change: 'join', name: id }, label: `Opt into ${id}`, confirm: `${v.dipId} is sent every message on ${id} from now on` });
    return html`<tr><td>${id}</td><td>${deps.channel(id)?.definition.name ?? ''}</td><td>${optedIn ? badge('ok', 'opted in') : 'not opted in'}</td><td>${form}</td></tr>`;
  });
}

async function rolesPage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const p = s.caller;
  const v = await deps.selfService.view(p);
  const body = html`<p class="muted">The roles ${v.dipId} holds, the optional roles it may sign up for and the channels it may opt into (the DIP's operator decides which). The same as the participant API's <code>GET /participants/${v.dipId}</code>, <code>PUT</code> and <code>DELETE …/roles/{role}</code> and <code>…/channels/{channel}</code>; every change is journalled under your name.</p>
${facts([
  ['Roles held', v.roles.join(', ') || 'none'],
  ['From the central register', v.registerRoles === null ? 'the register does not list it' : v.registerRoles.join(', ') || 'none'],
])}
<h2>Optional roles</h2>
${table(`Optional roles ${v.dipId} may sign up for`, ['Role', 'State', ''], roleRows(c, p, v), 'No optional role: the operator offers none.')}
<h2>Channels to opt into</h2>
${table(`Channels ${v.dipId} may opt into`, ['Channel', 'Name', 'State', ''], channelRows(deps, c, p, v), 'No channel takes participants opting in.')}
${levelNote(c, 'admin', 'signing up for roles and channels and leaving them')}`;
  return render(c.reply, status, R, c.req, c.signed, p.dipId === c.own.dipId ? 'Roles and channels' : `Roles and channels: acting for ${p.dipId}`, body, flash);
}

/** What went wrong in a form, said on its page with the status the API would have answered. */
async function failed(page: (flash: Flash, status: number) => Promise<FastifyReply>, e: unknown, what: string): Promise<FastifyReply> {
  const refusal = refusalOf(e);
  if (!refusal) throw e;
  return page({ kind: 'error', text: `${what}: ${refusal.message}` }, refusal.status);
}

async function changeRoleOrChannel(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const again = (flash: Flash, status: number) => rolesPage(deps, c, flash, status);
  const kind = field(c.req.body, 'kind');
  const change = field(c.req.body, 'change');
  if ((kind !== 'role' && kind !== 'channel') || (change !== 'join' && change !== 'leave')) return again({ kind: 'error', text: 'kind must be role or channel, and change join or leave' }, 400);
  // A channel in any case, as the API's URL takes it.
  const name = kind === 'channel' ? field(c.req.body, 'name').trim().toUpperCase() : field(c.req.body, 'name').trim();
  if (field(c.req.body, 'confirm') !== 'yes') return again({ kind: 'error', text: `${name} not changed: tick the confirmation first` }, 400);
  const step = CHANGES[kind][change];
  try {
    await step.run(deps, s.caller, name, c);
  } catch (e) {
    return failed(again, e, `${name} not changed`);
  }
  deps.logger.info({ username: c.signed.account.username, participant: s.caller.dipId, kind, change, name }, 'portal: self-service change');
  return again({ kind: 'ok', text: step.done(s.caller.dipId, name) }, 200);
}

async function providerPage(deps: PortalDeps, c: Ctx, flash: Flash, status: number): Promise<FastifyReply> {
  const p = current(deps, c);
  const provider = p.connectionProvider ? deps.registry.participant(p.connectionProvider) : undefined;
  const connectsFor = deps.registry.participants().filter((x) => x.connectionProvider === p.dipId);
  const admin = may(c, 'admin');
  const nominate = confirmedForm(c, {
    action: PROVIDER_PAGE,
    id: 'nominate',
    fields: { change: 'nominate' },
    label: 'Nominate',
    confirm: `the participant named sends and receives for ${p.dipId} and may change its roles and channels${p.connectionProvider ? ` (in place of ${p.connectionProvider})` : ''}`,
    controls: input('dipId', 'DIP ID of the DIP Connection Provider', { required: true, pattern: '[0-9A-Za-z]{10}', maxlength: 10, autocomplete: 'off' }),
  });
  const body = html`<p class="muted">A DIP Connection Provider is a registered participant that connects to the DIP for ${p.dipId}: it sends and receives its messages, and may read and change its roles and channels. The nomination is ${p.dipId}'s own: the provider cannot make or withdraw it. The same as the participant API's <code>PUT</code> and <code>DELETE /participants/${p.dipId}/connection-provider</code>; every change is journalled under your name.</p>
${facts([
  ['DIP Connection Provider', p.connectionProvider ? `${p.connectionProvider}${provider ? ` (${provider.organisation}, ${provider.roles.join(', ')})` : ''}` : 'none: connects itself'],
  ['Connects for', connectsFor.length ? connectsFor.map((a) => `${a.dipId} (${a.roles.join(', ')})`).join(', ') : 'no other participant'],
])}
${when(admin && p.connectionProvider, () => confirmedForm(c, { action: PROVIDER_PAGE, id: 'withdraw', fields: { change: 'withdraw' }, label: `Withdraw ${p.connectionProvider!}`, confirm: `${p.connectionProvider!} no longer connects for ${p.dipId}: ${p.dipId} connects itself`, kind: 'danger' }))}
${admin ? html`<h2>Nominate a DIP Connection Provider</h2>${nominate}` : levelNote(c, 'admin', 'nominating and withdrawing the DIP Connection Provider')}`;
  return render(c.reply, status, R, c.req, c.signed, 'Connection provider', body, flash);
}

async function changeProvider(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const again = (flash: Flash, status: number) => providerPage(deps, c, flash, status);
  const change = field(c.req.body, 'change');
  if (change !== 'nominate' && change !== 'withdraw') return again({ kind: 'error', text: 'change must be nominate or withdraw' }, 400);
  const provider = change === 'nominate' ? field(c.req.body, 'dipId').trim() : null;
  if (field(c.req.body, 'confirm') !== 'yes') return again({ kind: 'error', text: 'not changed: tick the confirmation first' }, 400);
  let removed: string[];
  try {
    removed = (await deps.selfService.nominate(current(deps, c), provider, c.signed.account)).removedWebhooks.map((w) => w.channel);
  } catch (e) {
    return failed(again, e, 'not changed');
  }
  deps.logger.info({ username: c.signed.account.username, participant: c.own.dipId, connectionProvider: provider, removedWebhooks: removed }, 'portal: connection provider changed');
  const hooks = removed.length ? `; the former provider's webhooks for ${removed.join(', ')} were removed: those messages wait to be pulled` : '';
  return again({ kind: 'ok', text: `${provider ? `${provider} nominated: it may now connect for ${c.own.dipId}` : `nomination withdrawn: ${c.own.dipId} connects itself`}${hooks}` }, 200);
}
