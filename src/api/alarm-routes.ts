import type { FastifyInstance, FastifyReply } from 'fastify';
import { ALARM_RULES, type AlarmSubscriptionStore } from '../ports/alarms.js';
import { newSubscription, type Alarms, type SubscriptionInput } from '../pipeline/alarms.js';

/** What the alarm routes of either listener need. */
export interface AlarmApiDeps {
  alarms: Pick<Alarms, 'current'>;
  subscriptions: AlarmSubscriptionStore;
  /** Refuses webhook URLs on internal networks (outside DEV), as for message webhooks. */
  checkUrl(url: string): Promise<string | null>;
  now(): number;
}

export const subscriptionBody = {
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  properties: {
    rules: { type: 'array', minItems: 1, maxItems: ALARM_RULES.length, items: { type: 'string', enum: [...ALARM_RULES] } },
    email: { type: 'string', nullable: true, minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' },
    webhookUrl: { type: 'string', nullable: true, maxLength: 2048, pattern: '^https?://' },
  },
} as const;

/**
 * Creating a subscription, the same for an operator and a participant: where the notices go is checked
 * (a webhook URL must pass the destination rules), then stored under its owner. Answers the JSON the
 * routes send, or an error with its status.
 */
export async function subscribe(deps: AlarmApiDeps, owner: string, input: SubscriptionInput, reply: FastifyReply, fail: (status: number, help: string) => FastifyReply): Promise<FastifyReply> {
  const made = newSubscription(owner, input, deps.now());
  if ('error' in made) return fail(400, made.error);
  if (made.webhookUrl) {
    const refused = await deps.checkUrl(made.webhookUrl);
    if (refused !== null) return fail(400, `webhookUrl: ${refused}`);
  }
  await deps.subscriptions.put(made);
  return reply.code(201).send(made);
}

/** The operator's alarm routes: every alarm, and the operator's own subscriptions (owner `operator`). */
export function registerAdminAlarmRoutes(app: FastifyInstance, deps: AlarmApiDeps): void {
  app.get('/admin/alarms', async () => ({ alarms: deps.alarms.current('operator') }));
  app.get('/admin/alarms/subscriptions', async () => ({ subscriptions: await deps.subscriptions.list() }));
  app.post<{ Body: SubscriptionInput & { owner?: string } }>(
    '/admin/alarms/subscriptions',
    { schema: { body: { ...subscriptionBody, properties: { ...subscriptionBody.properties, owner: { type: 'string', minLength: 1, maxLength: 20 } } } } },
    async (req, reply) => subscribe(deps, req.body.owner ?? 'operator', req.body, reply, (status, error) => reply.code(status).send({ error })),
  );
  app.delete<{ Params: { id: string } }>('/admin/alarms/subscriptions/:id', async (req, reply) => {
    const all = await deps.subscriptions.list();
    const found = all.find((s) => s.id === req.params.id);
    if (!found || !(await deps.subscriptions.remove(found.owner, found.id))) return reply.code(404).send({ error: `no subscription ${req.params.id}` });
    return reply.code(204).send();
  });
}
