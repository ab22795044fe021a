import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { subscriptionBody, type SubscriptionInput } from '../../pipeline/alarms.js';
import { subscribe, type AlarmApiDeps } from '../alarm-routes.js';
import type { ApiDeps } from '../deps.js';
import { admitted } from '../guard.js';
import { sendStandard } from '../request.js';

/**
 * A participant's alarms (OpenDIP extension, signed like every call): the alarms that concern it now,
 * and its own subscriptions. It never sees or changes another's.
 */
export function registerAlarmRoutes(app: FastifyInstance, deps: ApiDeps, alarms: AlarmApiDeps): void {
  app.get('/observability/alarms', { config: { access: 'participant' } }, async (req) => ({ alarms: alarms.alarms.current(admitted(req).caller.dipId) }));
  app.get('/observability/alarm-subscriptions', { config: { access: 'participant' } }, async (req) => ({ subscriptions: await alarms.subscriptions.list(admitted(req).caller.dipId) }));
  app.post<{ Body: SubscriptionInput }>('/observability/alarm-subscriptions', { config: { access: 'participant' }, schema: { body: subscriptionBody } }, async (req, reply) => {
    const owner = admitted(req).caller.dipId;
    return subscribe(alarms, owner, req.body, reply, (status, help) => sendStandard(deps, reply, status, owner, MSG.schemaFailure, help));
  });
  app.delete<{ Params: { id: string } }>('/observability/alarm-subscriptions/:id', { config: { access: 'participant' } }, async (req, reply) => {
    const owner = admitted(req).caller.dipId;
    if (!(await alarms.subscriptions.remove(owner, req.params.id))) return sendStandard(deps, reply, 404, owner, MSG.processingFailed, `you have no alarm subscription ${req.params.id}`);
    return reply.code(204).send();
  });
}
