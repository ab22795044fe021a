import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route answers with a stream that may be large (a publication's content): useAnswerDeadlines bounds a client that stops reading it. */
    streamedAnswer?: boolean;
  }
}
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

/**
 * How long a client may leave a streamed answer (`config.streamedAnswer`: a publication's content) unread,
 * on the injected clock. Node bounds nothing once the request has arrived: a client that asks for a
 * download and stops reading kept the connection, the blob's open file and the chunks in hand (a few
 * MB each) for as long as it liked, and on the anonymous listener anyone could open hundreds. The answer
 * is not bounded as a whole (gigabytes to a slow link take long): only while the DIP has bytes waiting
 * for the client (the answer's buffer is full) and the socket has sent none for `downloadIdleTimeoutMs`
 * is the connection closed; time the DIP itself spends (reading a large file to find the rows a filter
 * keeps) never counts. The status line went long ago, so the client sees the transfer cut short, and may
 * resume it with Range.
 */
export function useAnswerDeadlines(app: FastifyInstance, limits: Pick<HttpLimits, 'downloadIdleTimeoutMs'>, clock: Clock, onCut: (url: string, sentBytes: number) => void = () => {}): void {
  app.addHook('onRequest', (req, reply, done) => {
    if (req.routeOptions.config.streamedAnswer !== true) return done();
    const answer = reply.raw;
    const socket = req.raw.socket;
    const idleMs = limits.downloadIdleTimeoutMs;
    let sent = socket.bytesWritten;
    let lastProgress = clock.now();
    let cancel: Cancel = () => {};
    const check = (): void => {
      if (answer.writableFinished || socket.destroyed) return;
      // Progress: the socket sent something, or nothing is waiting for the client (the DIP is the slow one).
      if (!answer.writableNeedDrain || socket.bytesWritten !== sent) {
        sent = socket.bytesWritten;
        lastProgress = clock.now();
      }
      const idle = clock.now() - lastProgress;
      if (idle >= idleMs) {
        onCut(req.url, sent);
        socket.destroy();
        return;
      }
      cancel = clock.after(Math.min(idleMs - idle, Math.ceil(idleMs / 4)), check);
    };
    cancel = clock.after(Math.ceil(idleMs / 4), check);
    answer.once('close', () => cancel());
    done();
  });
}
