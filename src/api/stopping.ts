import { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MSG } from '../domain/response-codes.js';
import { STORE_RETRY_AFTER_SECONDS } from '../pipeline/ingest.js';
import type { ApiDeps } from './deps.js';
import { sendStandard } from './request.js';

/** What a stopping listener tells every request (in its own answer shape), and how soon to send it again. */
const STOPPING_HELP = `the DIP is stopping (a restart or a deployment): nothing of this request was done; send it again unchanged in ${STORE_RETRY_AFTER_SECONDS} s`;

/** A listener's answer to a request that arrives while it stops: status 503, headers set, `help` in its own shape. */
export type StoppingAnswer = (req: FastifyRequest, reply: FastifyReply, help: string) => FastifyReply;

/** The participant's and the anonymous listener's answer while stopping: a StandardResponse, as their every refusal. */
export const standardStopping =
  (deps: ApiDeps): StoppingAnswer =>
  (_req, reply, help) =>
    sendStandard(deps, reply, 503, null, MSG.processingFailed, help);

/** The operator API's: `{"error": "<what and why>"}`, as its every refusal. */
export const operatorStopping: StoppingAnswer = (_req, reply, help) => reply.send({ error: help });

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * A route whose answers have a shape of their own (the health endpoints: a load balancer reads
     * `status`) says how it answers while its listener stops: the listener's refusal does not fit the
     * route's 503 schema, and its serialisation failed into a 500 (`GET /ready` in every graceful stop).
     */
    stoppingAnswer?: (help: string) => unknown;
  }
}

/** Each gracefully stopping listener's start of its stop (useGracefulStop), for beginGracefulStop. */
const beginnings = new WeakMap<FastifyInstance, () => void>();

/**
 * A graceful stop (SIGTERM, `dip serve` stopping) that leaves no client without an HTTP answer, on every
 * listener (participant, anonymous, operator, portals). Closing a listener at once destroyed every
 * kept-alive connection between two requests, and a sender whose next request was already on its way got
 * a connection reset, not knowing whether it was taken (a fault campaign saw 3 of 8 busy senders reset).
 * Instead, once stopping: every request is answered by `refuse` (503, Retry-After, Connection: close:
 * nothing of it done), those in flight finish as they would, and the listener waits until its clients
 * have closed their connections, at most `drainMs` (config `http.stopDrainMs`) from when the stop
 * began, before it closes what is left. New connections are refused only after that (the port is
 * closed). The stop begins at beginGracefulStop (the DIP calls it for all its listeners at once, so they
 * drain side by side and a stop takes one drain, not one per listener) or at the latest when the
 * listener is closed. Fastify must be built with `return503OnClosing: false`, or it answers its own bare
 * `{"error":"Service Unavailable"}` first. Registered after the activity log's hook, so that a refusal
 * has its request ID and its record as every other answer.
 */
export function useGracefulStop(app: FastifyInstance, drainMs: number, refuse: StoppingAnswer): void {
  /** When the drain ends at the latest; null until the stop begins. */
  let deadline: number | null = null;
  const open = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  const begin = () => {
    deadline ??= Date.now() + drainMs;
    return deadline;
  };
  beginnings.set(app, begin);
  app.addHook('onRequest', async (req, reply) => {
    // What the DIP asks of itself in process (Fastify inject: a portal page in flight calling the operator
    // API, inProcessTransport) has no network socket: it finishes as it would. Only clients are refused.
    if (deadline === null || !(req.raw.socket instanceof Socket)) return;
    reply.header('connection', 'close');
    reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS));
    reply.code(503);
    const own = req.routeOptions.config.stoppingAnswer;
    return own ? reply.send(own(STOPPING_HELP)) : refuse(req, reply, STOPPING_HELP);
  });
  app.addHook('preClose', async () => {
    const until = begin();
    // Polled (the connections close one by one, each on its client's time); a wall-clock wait: a stop is real time.
    while (open.size > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
  });
}

/**
 * Begins a listener's stop now, without closing it: from here it refuses every request (useGracefulStop)
 * and its drain's time runs. A listener without useGracefulStop is left as it is.
 */
export function beginGracefulStop(app: FastifyInstance): void {
  beginnings.get(app)?.();
}
