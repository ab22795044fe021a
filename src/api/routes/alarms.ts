import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { withShownWebhook } from '../../domain/url-secrets.js';
import { subscriptionBody, type SubscriptionInput } from '../../pipeline/alarms.js';
import type { JsonSchema } from '../../catalogue/types.js';
import { withAction } from '../../pipeline/alarm-actions.js';
import { alarm, subscribe, subscription, type AlarmApiDeps } from '../alarm-routes.js';
import { answers, GUARDED, noBody, signatureHeaders } from '../route-schemas.js';
import type { ApiDeps } from '../deps.js';
import { admitted } from '../guard.js';
import { sendStandard } from '../request.js';

/**
 * A participant's alarms (OpenDIP extension, signed like every call): the alarms that concern it now,
 * and its own subscriptions. It never sees or changes another's.
 */
export function registerAlarmRoutes(app: FastifyInstance, deps: ApiDeps, alarms: AlarmApiDeps): void {
  const tags = ['Alarms (OpenDIP)'];
  const listOf = (name: string, item: object, description: string): JsonSchema => ({ type: 'object', required: [name], properties: { [name]: { type: 'array', items: item as JsonSchema } }, description });
  app.get(
    '/observability/alarms',
    { config: { access: 'participant' }, schema: { operationId: 'listAlarms', tags, summary: 'The alarms that concern the caller now (OpenDIP)', headers: signatureHeaders, response: answers(GUARDED, { 200: listOf('alarms', alarm, 'The alarms') }) } },
    async (req) => {
      const me = admitted(req).caller.dipId;
      return { alarms: alarms.alarms.current(me).map((c) => withAction(c, me)) };
    },
  );
  app.get(
    '/observability/alarm-subscriptions',
    { config: { access: 'participant' }, schema: { operationId: 'listAlarmSubscriptions', tags, summary: "The caller's alarm subscriptions (OpenDIP)", headers: signatureHeaders, response: answers(GUARDED, { 200: listOf('subscriptions', subscription, 'The subscriptions') }) } },
    async (req) => ({ subscriptions: (await alarms.subscriptions.list(admitted(req).caller.dipId)).map(withShownWebhook) }),
  );
  app.post<{ Body: SubscriptionInput }>(
    '/observability/alarm-subscriptions',
    {
      config: { access: 'participant' },
      schema: {
        operationId: 'subscribeToAlarms',
        tags,
        summary: 'Subscribe to alarms by e-mail or webhook (OpenDIP)',
        headers: signatureHeaders,
        body: subscriptionBody,
        response: answers(GUARDED, { 201: { ...(subscription as unknown as JsonSchema), description: 'Subscribed' } }),
      },
    },
    async (req, reply) => {
      const owner = admitted(req).caller.dipId;
      return subscribe(alarms, owner, req.body, reply, (status, help) => sendStandard(deps, reply, status, owner, MSG.schemaFailure, help));
    },
  );
  app.delete<{ Params: { id: string } }>(
    '/observability/alarm-subscriptions/:id',
    {
      config: { access: 'participant' },
      schema: {
        operationId: 'removeAlarmSubscription',
        tags,
        summary: 'Remove one of the caller\'s alarm subscriptions (OpenDIP)',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', description: 'The subscription ID' } } },
        headers: signatureHeaders,
        response: answers(GUARDED, { 204: noBody(204) }),
      },
    },
    async (req, reply) => {
      const owner = admitted(req).caller.dipId;
      if (!(await alarms.subscriptions.remove(owner, req.params.id))) return sendStandard(deps, reply, 404, owner, MSG.processingFailed, `you have no alarm subscription ${req.params.id}`);
      return reply.code(204).send();
    },
  );
}
