import type { FastifyReply } from 'fastify';
import type { OperatorApi } from '../openapi-client/index.js';
import type { PortalDeps } from './deps.js';
import { pageFilters, type FilterRule, type Filters } from './filters.js';
import { navBelow, type PortalReq, type Realm, type Signed } from './session.js';

/** The operator portal's realm and what its pages share (src/portal/operator-pages.ts, operator-audit-pages.ts). */
export const OPERATOR_REALM: Realm = {
  kind: 'operator',
  cookie: '__Host-dip-operator',
  base: '/operator',
  title: 'OpenDIP operator portal',
  nav: navBelow('/operator', [
    ['', 'Health'],
    ['alarms', 'Alarms'],
    ['participants', 'Participants'],
    ['applications', 'Applications'],
    ['channels', 'Channels'],
    ['publications', 'Publications'],
    ['reports', 'Reports'],
    ['audit', 'Audit'],
    ['maintenance', 'Maintenance'],
    ['dead-letters', 'Dead letters'],
    ['requeue-jobs', 'Requeue jobs'],
    ['certificates', 'Certificates'],
    ['operators', 'Operators'],
    ['journal', 'Journal'],
    ['activity', 'API activity'],
  ]),
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
