import type { AdminAct } from '../pipeline/admin-notice.js';
import type { FastifyPluginAsync } from 'fastify';
import type { OperatorAccounts } from '../pipeline/operators.js';
import type { PortalAccountService } from '../pipeline/portal-accounts.js';
import { realmOf, type PortalAccount } from '../ports/portal-accounts.js';
import { operatorOf } from './admin-operators.js';
import { levelOf, USER_LEVELS, type UserLevel } from '../domain/portal-levels.js';
import { answers, FIRST_PASSWORD_EXPIRY, isoTime } from './admin-schemas.js';

const accountView = {
  type: 'object',
  required: ['username', 'participantDipId', 'admin', 'displayName', 'disabled', 'createdAt', 'createdBy'],
  properties: {
    username: { type: 'string' },
    participantDipId: { type: ['string', 'null'], description: "The participant whose user it is; null: an operator's portal sign-in" },
    admin: { type: 'boolean', description: "The participant's administrator (creates its other users)" },
    level: {
      type: ['string', 'null'],
      enum: [...USER_LEVELS, null],
      description: "A participant's user's level in the user portal (viewer, operations, admin: README \"User levels\"). Null: an operator's portal sign-in",
    },
    displayName: { type: 'string' },
    disabled: { type: 'boolean' },
    createdAt: isoTime,
    createdBy: { type: 'string' },
  },
} as const;

const enrolled = {
  ...accountView,
  required: [...accountView.required, 'password', 'passwordExpiresAt'],
  properties: {
    ...accountView.properties,
    password: { type: 'string', description: 'The first password: shown this once. No TOTP secret: the person sets up their own at their first sign-in, and chooses their own password then' },
    passwordExpiresAt: FIRST_PASSWORD_EXPIRY,
  },
} as const;

/** A first password as answered: its expiry as the API's other times are (ISO 8601). */
const shownFirst = (f: { password: string; passwordExpiresAt: number }) => ({ password: f.password, passwordExpiresAt: new Date(f.passwordExpiresAt).toISOString() });

export interface AdminPortalOptions {
  accounts: PortalAccountService;
  operators: Pick<OperatorAccounts, 'list'>;
  /** Tells a participant's administrators that an operator made an administrator of its portal (src/pipeline/admin-notice.ts). */
  adminNotice?: (participantDipId: string, actor: string, act: AdminAct) => Promise<unknown>;
}

/** What an account looks like to tooling: never its hashes or sealed secret. */
const publicView = (a: PortalAccount) => ({
  username: a.username,
  participantDipId: a.participantDipId,
  admin: a.admin,
  level: a.participantDipId === null ? null : levelOf(a),
  displayName: a.displayName,
  disabled: a.disabled,
  createdAt: new Date(a.createdAt).toISOString(),
  createdBy: a.createdBy,
});

/**
 * Portal accounts on the operator API (the operator portal calls these too, as the operator signed in):
 * a participant's users (its first administrator, who then creates the rest in the user portal), and the
 * portal sign-in (password + TOTP) of an existing operator account, which only an admin gives. The answer
 * to a creation carries the first password, once, and no TOTP secret: every person sets up theirs at their
 * first sign-in, so no second factor passes through whoever made the account (who could otherwise sign
 * in as the person).
 */
export const adminPortalRoutes: FastifyPluginAsync<AdminPortalOptions> = async (app, { accounts, operators, adminNotice }) => {
  const tags = ['Portal accounts'];
  app.post<{ Body: { username: string; displayName: string; participantDipId?: string | null; admin?: boolean; level?: UserLevel } }>(
    '/admin/portal/accounts',
    {
      schema: {
        tags,
        summary: "A participant's portal user, or an operator's portal sign-in (admins): the first password in the answer, once, and no TOTP secret (the person sets up theirs at their first sign-in)",
        response: answers({ 201: { ...enrolled, description: 'Created' } }),
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'displayName'],
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 64 },
            displayName: { type: 'string', minLength: 1, maxLength: 100 },
            participantDipId: { type: ['string', 'null'], maxLength: 20 },
            admin: { type: 'boolean', description: 'Without `level`: the user is an administrator (true) or at the operations level (false, the default)' },
            level: { type: 'string', enum: [...USER_LEVELS], description: "A participant's user's level (README \"User levels\"), viewer included; it decides over `admin`. Not for an operator's sign-in" },
          },
        },
      },
    },
    async (req, reply) => {
      const who = operatorOf(req);
      const participantDipId = req.body.participantDipId ?? null;
      const { level } = req.body;
      if (participantDipId !== null) {
        // A participant's user, at the level asked: journalled as the user portal's creations are (`user.create`).
        const made = await accounts.createUser({ actor: who.actor, createdBy: who.actor }, { username: req.body.username, displayName: req.body.displayName, participantDipId, level: level ?? (req.body.admin === true ? 'admin' : 'operations') });
        if ('problem' in made) return reply.code(400).send({ error: made.problem });
        req.journaled = made.journalError === undefined;
        // An administrator made by an operator: the participant's administrators are told (an account takeover
        // path otherwise unseen by the participant). Told after the answer's account exists; a failure is logged there.
        if (made.account.admin) await adminNotice?.(participantDipId, who.actor, 'created');
        const { account, journalError: _unjournalled, ...shown } = made;
        return reply.code(201).send({ ...publicView(account), ...shownFirst(shown) });
      }
      if (level !== undefined) return reply.code(400).send({ error: "level: an operator's portal sign-in has no level (a participant's user's only)" });
      if (who.role !== 'admin') return reply.code(403).send({ error: `operator ${who.name} (${who.role}) may not give operators portal sign-in: admins only` });
      const operator = (await operators.list()).find((o) => o.name === req.body.username);
      if (!operator) return reply.code(400).send({ error: `username: no operator account '${req.body.username}': create it first (POST /admin/operators), then its portal sign-in` });
      const made = await accounts.createEnrollingAtFirstSignIn({ username: req.body.username, displayName: req.body.displayName, participantDipId: null, admin: true, createdBy: who.actor });
      if ('problem' in made) return reply.code(400).send({ error: made.problem });
      const { account, ...shown } = made;
      return reply.code(201).send({ ...publicView(account), ...shownFirst(shown) });
    },
  );

  app.get<{ Querystring: { participant?: string } }>(
    '/admin/portal/accounts',
    {
      schema: {
        tags,
        summary: "Portal accounts: a participant's users, or (without participant) the operators' sign-ins",
        querystring: { type: 'object', properties: { participant: { type: 'string', maxLength: 20 } }, additionalProperties: false },
        response: answers({ 200: { type: 'array', items: accountView, description: 'The accounts' } }),
      },
    },
    async (req) => (await accounts.accounts(req.query.participant ?? null)).map(publicView),
  );

  app.post<{ Params: { username: string }; Body: { disabled: boolean; participantDipId?: string | null } }>(
    '/admin/portal/accounts/:username/disabled',
    {
      schema: {
        tags,
        summary: "Disable a portal account (signed out everywhere) or enable it again; a participant's user's change is journalled as user.disable or user.enable",
        params: { type: 'object', required: ['username'], properties: { username: { type: 'string', minLength: 1, maxLength: 64 } } },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['disabled'],
          properties: {
            disabled: { type: 'boolean' },
            participantDipId: {
              type: ['string', 'null'],
              maxLength: 20,
              description: "Whose account: the participant whose user it is, or null for an operator's portal sign-in (operators' and users' names are apart, so one name may be both). Absent: the one account of the name, refused (409) when it is both",
            },
          },
        },
        response: answers({ 200: { ...accountView, description: 'The account as it is now' } }, [404, 409]),
      },
    },
    async (req, reply) => {
      const who = operatorOf(req);
      const found = await accountNamed(accounts, req.params.username, req.body.participantDipId);
      if (found === 'both') return reply.code(409).send({ error: `'${req.params.username}' is both an operator's portal sign-in and a participant's user: name which (participantDipId, null for the operator's)` });
      const target = found;
      if (!target) return reply.code(404).send({ error: `no portal account '${req.params.username}'` });
      if (target.participantDipId === null && who.role !== 'admin') return reply.code(403).send({ error: `operator ${who.name} (${who.role}) may not change operators' portal sign-in: admins only` });
      // One's own: an operator's credential of the caller's name, held by a person (a participant's user
      // may bear an automation account's name, and is not that account's).
      if (target.participantDipId === null && !who.automation && target.username === who.name) return reply.code(400).send({ error: 'you cannot disable your own portal sign-in' });
      const changed = await accounts.setDisabled(who.actor, target, req.body.disabled);
      if (!changed) return reply.code(404).send({ error: `no portal account '${req.params.username}'` });
      // A participant's user's change is journalled by the service, with before and after; else the call is.
      req.journaled = realmOf(target) === 'user' && changed.journalError === undefined;
      // A participant's administrator enabled again by an operator is as good a takeover as one made: told alike.
      if (target.participantDipId !== null && target.admin && target.disabled && !req.body.disabled) await adminNotice?.(target.participantDipId, who.actor, 'enabled');
      return publicView(changed.account);
    },
  );
};

/**
 * The account an operator names: of the participant given (null: the operator's), or, none given, the
 * one account of the name in either realm ('both': it is an operator's and a user's, and must be named).
 * Operators may see every account, so looking in both realms tells them nothing they may not know.
 */
async function accountNamed(accounts: Pick<PortalAccountService, 'account'>, username: string, participantDipId: string | null | undefined): Promise<PortalAccount | 'both' | undefined> {
  if (participantDipId !== undefined) {
    const account = await accounts.account(realmOf({ participantDipId }), username);
    return account?.participantDipId === participantDipId ? account : undefined;
  }
  const [operator, user] = await Promise.all([accounts.account('operator', username), accounts.account('user', username)]);
  return operator && user ? 'both' : (operator ?? user);
}
