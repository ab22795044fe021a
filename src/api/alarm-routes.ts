import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { ALARM_RULES, type AlarmSubscriptionStore } from '../ports/alarms.js';
import { createSubscription, subscriptionBody, type Alarms, type SubscriptionInput } from '../pipeline/alarms.js';
import { withAction } from '../pipeline/alarm-actions.js';
import { subscriptionForOperator } from '../domain/operators.js';
import { answers, empty, epochMs } from './admin-schemas.js';
import { operatorOf } from './admin-operators.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { withShownWebhook } from '../domain/url-secrets.js';
import type { AlarmSubscription } from '../ports/alarms.js';

/** What the alarm routes of either listener need. */
export interface AlarmApiDeps {
  /** The DIP's environment: outside DEV a webhook URL must be https (SubscriptionDeps). */
  environment: string;
  alarms: Pick<Alarms, 'current'>;
  subscriptions: AlarmSubscriptionStore;
  /** Refuses webhook URLs on internal networks (outside DEV), as for message webhooks. */
  checkUrl(url: string): Promise<string | null>;
  now(): number;
  /** The operator's delivery latency threshold: a subscription's own may not be lower (SubscriptionDeps). */
  deliveryLatencyFloorSeconds?: number;
  /** The operator's subscriptions are journalled (spec 8.3), their webhook URLs in their shown form; absent: not journalled. */
  journal?: Pick<OperatorJournal, 'append'>;
}

/** The routes' answer to a new subscription: 201 with it, or a 400 saying what is wrong. */
export async function subscribe(
  deps: AlarmApiDeps,
  owner: string,
  input: SubscriptionInput,
  reply: FastifyReply,
  fail: (status: number, help: string) => FastifyReply,
  made: (s: AlarmSubscription) => Promise<void> = async () => {},
): Promise<FastifyReply> {
  // The operator's route also takes `owner`: only the subscription's own fields are checked here.
  const fields = { rules: input.rules, ...(input.email !== undefined ? { email: input.email } : {}), ...(input.webhookUrl !== undefined ? { webhookUrl: input.webhookUrl } : {}), ...(input.thresholds !== undefined ? { thresholds: input.thresholds } : {}) };
  const created = await createSubscription(deps, owner, fields);
  if (!created.ok) return fail(400, created.help);
  await made(created.subscription);
  return reply.code(201).send(created.subscription);
}

/** An alarm as both listeners answer it. */
export const alarm = {
  type: 'object',
  required: ['key', 'rule', 'participant', 'summary', 'action', 'since'],
  properties: {
    key: { type: 'string', description: 'Stable while the condition holds' },
    rule: { type: 'string', enum: [...ALARM_RULES] },
    participant: { type: ['string', 'null'], description: 'Whom it concerns; null: the DIP itself' },
    summary: { type: 'string', description: 'What holds, with its numbers (dead letters, failed calls, minutes) as of the last evaluation (every observability.alarms.evaluateIntervalMs, 10 s by default)' },
    action: { type: 'string', description: 'What to do about it, for the one asking (an operator, or the participant on its own side), and when it resolves' },
    since: { ...epochMs, description: 'When it was raised, epoch ms' },
    channel: { type: 'string', description: "The queue's channel (dead-letter, queue-age, delivery-latency)" },
    subscription: {
      type: 'object',
      required: ['id', 'owner'],
      properties: { id: { type: 'string' }, owner: { type: 'string' } },
      description: "Present when it holds against that subscription's own thresholds, not the operator's: listed to its owner only",
    },
  },
} as const;
/** An alarm subscription as both listeners answer it. */
export const subscription = {
  type: 'object',
  required: ['id', 'owner', 'rules', 'email', 'webhookUrl', 'createdAt'],
  properties: {
    id: { type: 'string' },
    owner: { type: 'string', description: '`operator` or a participant\'s DIP ID' },
    rules: subscriptionBody.properties.rules,
    email: { type: ['string', 'null'], description: 'Held back from operators of the viewer role in lists' },
    webhookUrl: { type: ['string', 'null'], description: 'In lists, as shown: without user or password, each query value replaced by …' },
    createdAt: epochMs,
    thresholds: subscriptionBody.properties.thresholds,
  },
} as const;

/** The operator's alarm routes: every alarm, and the operator's own subscriptions (owner `operator`). */
export const adminAlarmRoutes: FastifyPluginAsync<AlarmApiDeps> = async (app, deps) => {
  // The subscription as shown (its webhook URL's key masked: shownUrl); its e-mail address is held back
  // from viewers by the journal's reading (journalForViewer), as the subscription list holds it back.
  const journalled = async (req: FastifyRequest, action: string, target: string, before: unknown, after: unknown): Promise<void> => {
    if (!deps.journal) return;
    await deps.journal.append({ at: deps.now(), actor: operatorOf(req).actor, action, target, before, after, status: after === null ? 204 : 201 });
    req.journaled = true;
  };
  const tags = ['Alarms'];
  app.get(
    '/admin/alarms',
    { schema: { tags, summary: 'Every alarm that holds now', response: answers({ 200: { type: 'object', required: ['alarms'], properties: { alarms: { type: 'array', items: alarm } }, description: 'The alarms' } }) } },
    async () => ({ alarms: deps.alarms.current('operator').map((c) => withAction(c, 'operator')) }),
  );
  app.get(
    '/admin/alarms/subscriptions',
    { schema: { tags, summary: "Every alarm subscription, operators' and participants'", response: answers({ 200: { type: 'object', required: ['subscriptions'], properties: { subscriptions: { type: 'array', items: subscription } }, description: 'The subscriptions' } }) } },
    async (req) => {
      const { role } = operatorOf(req);
      return { subscriptions: (await deps.subscriptions.list()).map((s) => subscriptionForOperator(s, role)) };
    },
  );
  app.post<{ Body: SubscriptionInput & { owner?: string } }>(
    '/admin/alarms/subscriptions',
    {
      schema: {
        tags,
        summary: 'Subscribe to alarms by e-mail or webhook (owner: `operator` unless a DIP ID is given)',
        body: { ...subscriptionBody, properties: { ...subscriptionBody.properties, owner: { type: 'string', minLength: 1, maxLength: 20 } } },
        response: answers({ 201: { ...subscription, description: 'Subscribed' } }),
      },
    },
    async (req, reply) =>
      subscribe(deps, req.body.owner ?? 'operator', req.body, reply, (status, error) => reply.code(status).send({ error }), (s) => journalled(req, 'alarm-subscription.create', s.id, null, withShownWebhook(s))),
  );
  app.delete<{ Params: { id: string } }>(
    '/admin/alarms/subscriptions/:id',
    { schema: { tags, summary: 'Remove a subscription', params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 100 } } }, response: answers({ 204: empty('Removed') }, [404]) } },
    async (req, reply) => {
      const all = await deps.subscriptions.list();
      const found = all.find((s) => s.id === req.params.id);
      if (!found || !(await deps.subscriptions.remove(found.owner, found.id))) return reply.code(404).send({ error: `no subscription ${req.params.id}` });
      await journalled(req, 'alarm-subscription.remove', found.id, withShownWebhook(found), null);
      return reply.code(204).send();
    },
  );
};
