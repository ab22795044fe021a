/**
 * Operators are people (spec 8.3): each has a name, a credential of their own and one role.
 *  - viewer: reads everything on the operator API, changes nothing;
 *  - operator: runs the DIP (dead letters, queues, channels, participants, the register feed, MPAN lookup);
 *  - admin: also manages operator accounts and security (PKI, data keys): the security officer.
 */
export const OPERATOR_ROLES = ['viewer', 'operator', 'admin'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

/** Operator names: letters, digits, dot, dash, underscore; they appear in the journal as `operator:<name>`. */
export const OPERATOR_NAME_PATTERN = /^[a-z0-9][\w.-]{0,63}$/i;

/** Paths only an admin may change (and, for operator accounts, read). */
const SECURITY_PATHS = ['/admin/operators', '/admin/pki', '/admin/keys'];

/** Whether an operator in `role` may make this call (method and path, without the query). */
export function operatorMay(role: OperatorRole, method: string, path: string): boolean {
  if (role === 'admin') return true;
  const security = SECURITY_PATHS.some((p) => path === p || path.startsWith(`${p}/`));
  if (security && path.startsWith('/admin/operators')) return false;
  const reads = method === 'GET' || method === 'HEAD';
  if (reads) return true;
  return role === 'operator' && !security;
}
