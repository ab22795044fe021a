import type { FastifyReply } from 'fastify';
import type { Participant } from '../domain/participant.js';
import { LEVEL_POWERS, levelOf, mayAct, type UserLevel } from '../domain/portal-levels.js';
import { authorise, type Access, type Scope } from '../pipeline/access.js';
import type { PortalDeps } from './deps.js';
import { hidden, html, when, type Html } from './html.js';
import { field, navBelow, refuse, type PortalReq, type Realm, type Signed } from './session.js';
import { pageFilters, type FilterRule, type Filters } from './filters.js';

/** The user portal's realm and the context its page handlers get (src/portal/user-pages.ts and user-self-pages.ts). */
export const USER_REALM: Realm = {
  kind: 'user',
  cookie: '__Host-dip-portal',
  base: '/portal',
  title: 'OpenDIP participant portal',
  nav: navBelow('/portal', [
    ['', 'Overview'],
    ['webhooks', 'Webhooks'],
    ['messages', 'Messages'],
    ['audit', 'Audit'],
    ['replay', 'Replay'],
    ['status-messages', 'Status messages'],
    ['publications', 'Publications'],
    ['certificates', 'Certificates'],
    ['roles-and-channels', 'Roles and channels'],
    ['connection-provider', 'Connection provider'],
    ['reports', 'Reports'],
    ['maintenance', 'Maintenance'],
    ['alarms', 'Alarms'],
    ['activity', 'API activity'],
    ['users', 'Users'],
  ]),
};

export interface UserCtx {
  req: PortalReq;
  reply: FastifyReply;
  signed: Signed;
  /** The participant the user belongs to. */
  own: Participant;
}

/**
 * Registers one of the user portal's pages (pageRoutes with the user's context). A POST changes something
 * and names the level it needs (src/domain/portal-levels.ts): checked before its handler runs, so no form
 * is one a lower level can send by hand. Reads (GET) are every level's, and so are the changes a user makes
 * to what is only its own (its saved reports: `viewer`), which touch nothing of the participant's.
 */
export interface UserPageRegistrar {
  (path: string, method: 'GET', handler: (c: UserCtx) => Promise<FastifyReply>, options?: { streamedAnswer?: boolean }): void;
  (path: string, method: 'POST', handler: (c: UserCtx) => Promise<FastifyReply>, options: { needs: UserLevel }): void;
}

/** How a page names a user's level. */
const AS: Readonly<Record<UserLevel, string>> = { viewer: 'a viewer', operations: 'at the operations level', admin: 'an administrator' };

/** Whether the signed-in user's level allows what needs `needs` (a page shows the form only then). */
export const may = (c: UserCtx, needs: UserLevel): boolean => mayAct(levelOf(c.signed.account), needs);

/** What a lower level is told, on a page instead of its forms and in the 403 of a form sent anyway. */
export function levelNeeded(c: UserCtx, needs: UserLevel, what: string): string {
  return `You are ${AS[levelOf(c.signed.account)]}: ${what} needs the ${needs} level (${LEVEL_POWERS[needs]}). ${c.own.dipId}'s administrators set levels on the Users page.`;
}

/** The note a page shows in place of the forms the user's level may not use; nothing when it may. */
export function levelNote(c: UserCtx, needs: UserLevel, what: string): Html | null {
  return when(!may(c, needs), () => html`<p class="muted">${levelNeeded(c, needs, what)}</p>`);
}

/** The user portal's registrar: pageRoutes, each POST refused (403, naming the level) below the level it needs. */
export function userPages(routes: (path: string, method: 'GET' | 'POST', handler: (c: UserCtx) => Promise<FastifyReply>, options?: { streamedAnswer?: boolean }) => void): UserPageRegistrar {
  return (path: string, method: 'GET' | 'POST', handler: (c: UserCtx) => Promise<FastifyReply>, options: { streamedAnswer?: boolean; needs?: UserLevel } = {}) => {
    const { needs, ...rest } = options;
    if (method === 'POST' && needs === undefined) throw new Error(`POST ${path}: a user portal form names the level it needs`);
    routes(path, method, needs === undefined ? handler : async (c) => (may(c, needs) ? handler(c) : refuse(c.reply, USER_REALM, c.req, c.signed, 403, levelNeeded(c, needs, 'this change'))), rest);
  };
}

/** A value from the query string (GET) or the form (POST). */
export function param(req: PortalReq, name: string): string {
  return req.method === 'POST' ? field(req.body, name) : (req.query[name] ?? '');
}

/** A user portal page's filters (src/portal/filters.ts), or the page answered 400 naming what is wrong with them. */
export function userFilters<S extends Record<string, FilterRule>>(c: UserCtx, title: string, spec: S): Filters<S> | FastifyReply {
  return pageFilters({ ...c, realm: USER_REALM, title }, spec);
}

/**
 * The same rule as the participant API (src/pipeline/access.ts), applied to the user's participant as the
 * authenticated caller: `as` plays the URL's recipient-id (a DIP Connection Provider acting for a
 * participant that nominated it), `channel` the URL's channel. A refusal is answered with the API's help.
 */
export function scope(deps: PortalDeps, c: UserCtx, access: Access, channelId?: string): Scope | FastifyReply {
  const as = param(c.req, 'as') || c.own.dipId;
  const decided = authorise(deps.registry, (id) => deps.channel(id), c.own, access, { recipientId: as, channelId });
  if (!decided.ok) return refuse(c.reply, USER_REALM, c.req, c.signed, decided.status, decided.help);
  return { caller: decided.caller, channel: decided.channel, authenticated: decided.authenticated };
}

/** Keeps "acting as" across links when the user works for a participant that nominated theirs. */
export function asQuery(own: Participant, caller: Participant, sep: '?' | '&' = '?'): string {
  return caller.dipId === own.dipId ? '' : `${sep}as=${encodeURIComponent(caller.dipId)}`;
}
export function asFields(own: Participant, caller: Participant): Record<string, string> {
  return caller.dipId === own.dipId ? {} : { as: caller.dipId };
}
export function asField(own: Participant, caller: Participant): Html | null {
  return when(caller.dipId !== own.dipId, () => hidden('as', caller.dipId));
}

/** The detailed audit (journey) of a message the participant sent or received, keeping "acting as". */
export function journeyLink(own: Participant, caller: Participant, m: { channel: string; transactionId: string }): string {
  return `/portal/messages/${encodeURIComponent(m.channel)}/${encodeURIComponent(m.transactionId)}${asQuery(own, caller)}`;
}
