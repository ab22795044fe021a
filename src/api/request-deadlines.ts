import type { FastifyInstance } from 'fastify';

import type { Socket } from 'node:net';
import type { HttpLimits } from '../config.js';
import type { Cancel, Clock } from '../ports/clock.js';

/**
 * How long a request's body may take to arrive, on the injected clock. Node's own `requestTimeout`
 * bounds a whole request, which would cut off a legitimate 2 GB publication over a slow link; the
 * participant listener turns it off and uses this instead:
 * - a route that streams its body (`config.streamedBody`: a publication upload) must keep bytes coming:
 *   no byte for `uploadIdleTimeoutMs` and it is cut off, however long the upload takes as a whole;
 * - every other request must have arrived whole within `requestTimeoutMs` (slow bodies, slowloris).
 * Headers stay bounded by Node's `headersTimeout`, the handshake by `handshakeTimeout`. `timedOut` answers
 * 408 on the socket and closes it (the handler waiting for the body then fails with the connection).
 */
export function useRequestDeadlines(app: FastifyInstance, limits: Pick<HttpLimits, 'requestTimeoutMs' | 'uploadIdleTimeoutMs'>, clock: Clock, timedOut: (socket: Socket, help: string) => void): void {
  app.addHook('onRequest', (req, reply, done) => {
    const request = req.raw;
    if (request.complete) return done(); // no body, or all of it read with the headers
    const socket = request.socket;
    let cancel: Cancel = () => {};
    const expire = (help: string): void => {
      if (request.complete || socket.destroyed) return;
      // An answer already on its way (a refusal sent before reading the body) is not interleaved with another.
      if (reply.raw.headersSent) socket.destroy();
      else timedOut(socket, help);
    };
    if (req.routeOptions.config.streamedBody === true) {
      // Progress is what the socket has read: the body is left alone for its handler to stream.
      const idleMs = limits.uploadIdleTimeoutMs;
      let bytes = socket.bytesRead;
      let lastProgress = clock.now();
      const check = (): void => {
        if (request.complete) return;
        if (socket.bytesRead !== bytes) {
          bytes = socket.bytesRead;
          lastProgress = clock.now();
        }
        const idle = clock.now() - lastProgress;
        if (idle >= idleMs) expire(`the upload stalled: no bytes arrived for ${idleMs} ms`);
        else cancel = clock.after(Math.min(idleMs - idle, Math.ceil(idleMs / 4)), check);
      };
      cancel = clock.after(Math.ceil(idleMs / 4), check);
    } else {
      cancel = clock.after(limits.requestTimeoutMs, () => expire(`the request did not arrive in time: the whole request within ${limits.requestTimeoutMs} ms`));
    }
    reply.raw.once('close', () => cancel());
    done();
  });
}
