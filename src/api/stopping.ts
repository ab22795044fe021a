import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** How long a stopping listener keeps its connections open for what their clients send meanwhile. */
export const STOP_DRAIN_MS = 2_000;

/**
 * A graceful stop (SIGTERM, `dip serve` stopping) that leaves no sender without an HTTP answer. Closing a
 * listener at once destroyed every kept-alive connection between two requests, and a sender whose next
 * request was already on its way got a connection reset, not knowing whether it was taken (a fault
 * campaign saw 3 of 8 busy senders reset). Instead, once stopping: every request is answered by
 * `refuse` (503, Retry-After, Connection: close: nothing of it done), those in flight finish as they
 * would, and the listener waits until its clients have closed their connections, at most STOP_DRAIN_MS,
 * before it closes what is left. New connections are refused only after that (the port is closed).
 * Fastify must be built with `return503OnClosing: false`, or it answers its own bare 503 first.
 */
export function useGracefulStop(app: FastifyInstance, refuse: (reply: FastifyReply) => FastifyReply): void {
  let stopping = false;
  const open = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  app.addHook('onRequest', async (_req, reply) => {
    if (!stopping) return;
    reply.header('connection', 'close');
    return refuse(reply);
  });
  app.addHook('preClose', async () => {
    stopping = true;
    const deadline = Date.now() + STOP_DRAIN_MS;
    // Polled (the connections close one by one, each on its client's time); a wall-clock wait: a stop is real time.
    while (open.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  });
}
