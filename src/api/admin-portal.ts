import type { FastifyPluginAsync } from 'fastify';
import type { OperatorAccounts } from '../pipeline/operators.js';
import type { PortalAccountService } from '../pipeline/portal-accounts.js';
import type { PortalAccount } from '../ports/portal-accounts.js';
import { operatorOf } from './admin-operators.js';
import { levelOf, USER_LEVELS } from '../domain/portal-levels.js';
import { answers, isoTime } from './admin-schemas.js';

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
      description: "A participant's user's level in the user portal (viewer, operations, admin: README \"User levels\"); one made here is admin or operations, as `admin` says. Null: an operator's portal sign-in",
    },
    displayName: { type: 'string' },
    disabled: { type: 'boolean' },
    createdAt: isoTime,
    createdBy: { type: 'string' },
  },
} as const;

const enrolled = {
  ...accountView,
  required: [...accountView.required, 'password'],
  properties: {
    ...accountView.properties,
    password: { type: 'string', description: 'The first password: shown this once. No TOTP secret: the person sets up their own at their first sign-in, and chooses their own password then' },
  },
} as const;

export interface AdminPortalOptions {
  accounts: PortalAccountService;
  operators: Pick<OperatorAccounts, 'list'>;
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
export const adminPortalRoutes: FastifyPluginAsync<AdminPortalOptions> = async (app, { accounts, operators }) => {
  const tags = ['Portal accounts'];
  app.post<{ Body: { username: string; displayName: string; participantDipId?: string | null; admin?: boolean } }>(
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
            admin: { type: 'boolean' },
          },
        },
      },
    },
    async (req, reply) => {
      const who = operatorOf(req);
      const participantDipId = req.body.participantDipId ?? null;
      if (participantDipId === null) {
        if (who.role !== 'admin') return reply.code(403).send({ error: `operator ${who.name} (${who.role}) may not give operators portal sign-in: admins only` });
        const operator = (await operators.list()).find((o) => o.name === req.body.username);
        if (!operator) return reply.code(400).send({ error: `username: no operator account '${req.body.username}': create it first (POST /admin/operators), then its portal sign-in` });
      }
      const asked = { username: req.body.username, displayName: req.body.displayName, participantDipId, admin: participantDipId === null ? true : (req.body.admin ?? false), createdBy: who.actor };
      const made = await accounts.createEnrollingAtFirstSignIn(asked);
      if ('problem' in made) return reply.code(400).send({ error: made.problem });
      const { account, ...shown } = made;
      return reply.code(201).send({ ...publicView(account), ...shown });
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

  app.post<{ Params: { username: string }; Body: { disabled: boolean } }>(
    '/admin/portal/accounts/:username/disabled',
    {
      schema: {
        tags,
        summary: 'Disable a portal account (signed out everywhere) or enable it again',
        params: { type: 'object', required: ['username'], properties: { username: { type: 'string', minLength: 1, maxLength: 64 } } },
        body: { type: 'object', additionalProperties: false, required: ['disabled'], properties: { disabled: { type: 'boolean' } } },
        response: answers({ 200: { ...accountView, description: 'The account as it is now' } }, [404]),
      },
    },
    async (req, reply) => {
      const who = operatorOf(req);
      const target = await accounts.account(req.params.username);
      if (!target) return reply.code(404).send({ error: `no portal account '${req.params.username}'` });
      if (target.participantDipId === null && who.role !== 'admin') return reply.code(403).send({ error: `operator ${who.name} (${who.role}) may not change operators' portal sign-in: admins only` });
      // One's own: an operator's credential of the caller's name, held by a person (a participant's user
      // may bear an automation account's name, and is not that account's).
      if (target.participantDipId === null && !who.automation && target.username === who.name) return reply.code(400).send({ error: 'you cannot disable your own portal sign-in' });
      await accounts.setDisabled(target.username, req.body.disabled);
      return publicView({ ...target, disabled: req.body.disabled });
    },
  );
};
