import type { FastifyReply } from 'fastify';
import type { OperatorApi } from '../openapi-client/index.js';
import type { PortalDeps } from './deps.js';
import { pageFilters, type FilterRule, type Filters } from './filters.js';
import type { PortalReq, Realm, Signed } from './session.js';

/** The operator portal's realm and what its pages share (src/portal/operator-pages.ts, operator-audit-pages.ts). */
export const OPERATOR_REALM: Realm = {
  kind: 'operator',
  cookie: '__Host-dip-operator',
  base: '/operator',
  title: 'OpenDIP operator portal',
  nav: [
    { href: '/operator/', label: 'Health' },
    { href: '/operator/alarms', label: 'Alarms' },
    { href: '/operator/participants', label: 'Participants' },
    { href: '/operator/applications', label: 'Applications' },
    { href: '/operator/channels', label: 'Channels' },
    { href: '/operator/publications', label: 'Publications' },
    { href: '/operator/reports', label: 'Reports' },
    { href: '/operator/audit', label: 'Audit' },
    { href: '/operator/maintenance', label: 'Maintenance' },
    { href: '/operator/dead-letters', label: 'Dead letters' },
    { href: '/operator/requeue-jobs', label: 'Requeue jobs' },
    { href: '/operator/certificates', label: 'Certificates' },
    { href: '/operator/operators', label: 'Operators' },
    { href: '/operator/journal', label: 'Journal' },
    { href: '/operator/activity', label: 'API activity' },
  ],
};

export interface OperatorCtx {
  req: PortalReq;
  reply: FastifyReply;
  signed: Signed;
}

type Ctx = OperatorCtx;
const O = OPERATOR_REALM;

/** The page's filters (src/portal/filters.ts), or the page answered 400 naming what is wrong with them. */
export const filtersOf = <S extends Record<string, FilterRule>>(c: Ctx, title: string, spec: S): Filters<S> | FastifyReply => pageFilters({ ...c, realm: O, title }, spec);

/** The operator API as the operator signed in: a typed client (src/openapi-client), called in-process. */
export const api = (deps: PortalDeps, c: Ctx): OperatorApi => deps.operatorApi(c.signed.account.username);

/** What a refused call says: the operator API's {"error": "<what and why>"}. */
export function problemOf(error: unknown): string {
  return typeof error === 'object' && error !== null && 'error' in error && typeof error.error === 'string' ? error.error : 'refused';
}
