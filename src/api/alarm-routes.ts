import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AlarmSubscriptionStore } from '../ports/alarms.js';
import { createSubscription, subscriptionBody, type Alarms, type SubscriptionInput } from '../pipeline/alarms.js';

/** What the alarm routes of either listener need. */
export interface AlarmApiDeps {
  alarms: Pick<Alarms, 'current'>;
  subscriptions: AlarmSubscriptionStore;
  /** Refuses webhook URLs on internal networks (outside DEV), as for message webhooks. */
  checkUrl(url: string): Promise<string | null>;
  now(): number;
}

/** The routes' answer to a new subscription: 201 with it, or a 400 saying what is wrong. */
export async function subscribe(deps: AlarmApiDeps, owner: string, input: SubscriptionInput, reply: FastifyReply, fail: (status: number, help: string) => FastifyReply): Promise<FastifyReply> {
  // The operator's route also takes `owner`: only the subscription's own fields are checked here.
  const fields = { rules: input.rules, ...(input.email !== undefined ? { email: input.email } : {}), ...(input.webhookUrl !== undefined ? { webhookUrl: input.webhookUrl } : {}) };
  const made = await createSubscription(deps, owner, fields);
  return made.ok ? reply.code(201).send(made.subscription) : fail(400, made.help);
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
