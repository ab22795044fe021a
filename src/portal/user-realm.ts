import type { FastifyReply } from 'fastify';
import type { Participant } from '../domain/participant.js';
import { field, type PortalReq, type Realm, type Signed } from './session.js';
import { pageFilters, type FilterRule, type Filters } from './filters.js';

/** The user portal's realm and the context its page handlers get (src/portal/user-pages.ts and user-self-pages.ts). */
export const USER_REALM: Realm = {
  kind: 'user',
  cookie: '__Host-dip-portal',
  base: '/portal',
  title: 'OpenDIP participant portal',
  nav: [
    { href: '/portal/', label: 'Overview' },
    { href: '/portal/webhooks', label: 'Webhooks' },
    { href: '/portal/messages', label: 'Messages' },
    { href: '/portal/replay', label: 'Replay' },
    { href: '/portal/status-messages', label: 'Status messages' },
    { href: '/portal/publications', label: 'Publications' },
    { href: '/portal/certificates', label: 'Certificates' },
    { href: '/portal/reports', label: 'Reports' },
    { href: '/portal/maintenance', label: 'Maintenance' },
    { href: '/portal/alarms', label: 'Alarms' },
    { href: '/portal/activity', label: 'API activity' },
    { href: '/portal/users', label: 'Users' },
  ],
};

export interface UserCtx {
  req: PortalReq;
  reply: FastifyReply;
  signed: Signed;
  /** The participant the user belongs to. */
  own: Participant;
}

/** A value from the query string (GET) or the form (POST). */
export function param(req: PortalReq, name: string): string {
  return req.method === 'POST' ? field(req.body, name) : (req.query[name] ?? '');
}

/** A user portal page's filters (src/portal/filters.ts), or the page answered 400 naming what is wrong with them. */
export function userFilters<S extends Record<string, FilterRule>>(c: UserCtx, title: string, spec: S): Filters<S> | FastifyReply {
  return pageFilters({ ...c, realm: USER_REALM, title }, spec);
}
