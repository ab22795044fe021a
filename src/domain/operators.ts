import { withShownWebhook } from './url-secrets.js';

/**
 * Operators are people (spec 8.3): each has a name, a credential of their own and one role.
 *  - viewer: reads the operator API (but for message contents and the activity log), changes nothing: monitoring;
 *  - operator: runs the DIP (dead letters, queues, channels, participants, the register feed, MPAN lookup);
 *  - admin: also manages operator accounts and security (PKI, data keys, and offboarding, which revokes
 *    a participant's certificates): the security officer.
 */
export const OPERATOR_ROLES = ['viewer', 'operator', 'admin'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

/** Operator names: letters, digits, dot, dash, underscore; they appear in the journal as `operator:<name>`. */
export const OPERATOR_NAME_PATTERN = /^[a-z0-9][\w.-]{0,63}$/i;

/** DELETE here is a sign-out (src/api/admin-operators.ts SIGN_IN_PATH). */
const SIGN_OUT_PATH = '/admin/session';

/** An operator's own saved reports (src/api/admin-saved-reports.ts). */
const SAVED_REPORTS_PATH = '/admin/saved-reports';

/** Paths only an admin may change (and, for operator accounts, read). */
const SECURITY_PATHS = ['/admin/operators', '/admin/pki', '/admin/keys'];

/**
 * Routes outside SECURITY_PATHS that act on certificates all the same, with why: offboarding revokes the
 * participant's certificates, so it is an admin's as every other revocation is (POST /admin/pki/…/revoke).
 */
export const OFFBOARD_ROUTE = '/admin/participants/:dipId/offboard';
const ADMIN_ROUTES: ReadonlyMap<string, string> = new Map([[OFFBOARD_ROUTE, 'offboarding revokes the participant\'s certificates, so it needs the admin role']]);

/**
 * Reads that answer with what participants sent (personal data: an MPAN's half-hourly consumption), or
 * with what others were answered (the API activity log, masked, but a whole record of everyone's calls),
 * which the least privilege keeps from viewers, often automation accounts that feed a dashboard; and
 * companies' onboarding applications (a contact's name and e-mail address).
 */
const CONTENT_PATHS = ['/admin/evidence', '/admin/activity', '/admin/onboarding'];

/** What a viewer reads in place of a journal entry's personal data (journalForViewer). */
export const HELD_BACK = '(held back from viewers)';

/** The journal's actor for an applicant, followed by their contact address (src/pipeline/onboarding.ts verify). */
const APPLICANT_ACTOR = 'applicant:';

/** Fields of a journal entry's before and after that carry a person's or an applicant's contact details. */
const PERSONAL_FIELD = /^(?:companyName|contactName)$|email$/i;

/** Why a viewer may not filter the journal by `actor`, or null if it may. */
export function journalActorRefusal(role: OperatorRole, actor: string | undefined): string | null {
  return role === 'viewer' && actor?.toLowerCase().startsWith(APPLICANT_ACTOR) ? "applicants' contact details are for the operator and admin roles: filter by target (the application's ID) instead" : null;
}

/**
 * A journal entry as a viewer reads it. The journal is the record of who did what and when, which an
 * auditor with viewer rights is there to read, so it is not held back as CONTENT_PATHS are; but the
 * onboarding entries carry what GET /admin/onboarding holds back from viewers: an applicant's company,
 * name and e-mail address (the actor of `onboarding.verify`, and the before and after of
 * `onboarding.approve` and `.reject`), and others an e-mail address (a participant's maintenance contact).
 * Those values read HELD_BACK; the rest (action, target, MPIDs, roles, reasons, the DIP ID) is as stored.
 */
export function journalForViewer<E extends { actor: string; before: unknown; after: unknown }>(entry: E): E {
  return {
    ...entry,
    actor: entry.actor.startsWith(APPLICANT_ACTOR) ? APPLICANT_ACTOR.slice(0, -1) : entry.actor,
    before: maskPersonal(entry.before),
    after: maskPersonal(entry.after),
  };
}

/**
 * An alarm subscription as an operator in `role` reads it: its webhook URL in its shown form for every
 * role (withShownWebhook), and its e-mail address held back from viewers, as the journal's are.
 */
export function subscriptionForOperator<S extends { email: string | null; webhookUrl: string | null }>(s: S, role: OperatorRole): S {
  const shown = withShownWebhook(s);
  return role === 'viewer' && shown.email !== null ? { ...shown, email: HELD_BACK } : shown;
}

function maskPersonal(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskPersonal);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, PERSONAL_FIELD.test(k) && v !== null ? HELD_BACK : maskPersonal(v)]));
}

const under = (paths: readonly string[], path: string): boolean => paths.some((p) => path === p || path.startsWith(`${p}/`));

/** Why an operator in `role` may not make this call (method and path, without the query), or null if it may. */
export function operatorRefusal(role: OperatorRole, method: string, path: string): string | null {
  if (role === 'admin') return null;
  // Signing out ends the caller's own sessions and changes nothing of the DIP: a viewer must be able to
  // (`dip logout`), not be left holding a token it cannot end short of an admin disabling the account.
  if (method === 'DELETE' && path === SIGN_OUT_PATH) return null;
  // One's own saved reports change nothing of the DIP (every role saves them in the operator portal too).
  if (under([SAVED_REPORTS_PATH], path)) return null;
  if (under(['/admin/operators'], path)) return 'only an admin manages operator accounts';
  if (method === 'GET' || method === 'HEAD') {
    return role === 'viewer' && under(CONTENT_PATHS, path) ? 'message contents (personal data) and the API activity log are for the operator and admin roles' : null;
  }
  if (under(SECURITY_PATHS, path)) return 'only an admin changes security (PKI, data keys)';
  const adminOnly = ADMIN_ROUTES.get(path);
  if (adminOnly !== undefined) return adminOnly;
  return role === 'viewer' ? 'a viewer changes nothing' : null;
}
