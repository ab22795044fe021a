import { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Cancel, Clock } from '../ports/clock.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route answers with a stream that may be large (a publication's content): useAnswerDeadlines bounds a client that stops reading it. */
    streamedAnswer?: boolean;
  }
}

/**
 * How long a client may leave a streamed answer (`config.streamedAnswer`: a publication's content) unread,
 * on the injected clock, on every listener that serves one (participant, anonymous, portal). Node bounds nothing once the request has arrived: a client that asks for a
 * download and stops reading kept the connection, the blob's open file and the chunks in hand (a few
 * MB each) for as long as it liked, and on the anonymous listener anyone could open hundreds. The answer
 * is not bounded as a whole (gigabytes to a slow link take long): only while the DIP has bytes waiting
 * for the client (the answer's buffer is full) and the socket has sent none for `downloadIdleTimeoutMs`
 * is the connection closed; time the DIP itself spends (reading a large file to find the rows a filter
 * keeps) never counts. The status line went long ago, so the client sees the transfer cut short, and may
 * resume it with Range (a download of the stored bytes) or ask for it again (filtered or decompressed).
 */
export function useAnswerDeadlines(app: FastifyInstance, limits: { downloadIdleTimeoutMs: number }, clock: Clock, onCut: (url: string, sentBytes: number) => void = () => {}): void {
  app.addHook('onRequest', (req, reply, done) => {
    // An in-process request (Fastify inject: a portal page reading the operator API) has no network socket,
    // and its answer is read by the DIP itself: nothing to bound.
    if (req.routeOptions.config.streamedAnswer !== true || !(req.raw.socket instanceof Socket)) return done();
    const answer = reply.raw;
    const socket = req.raw.socket;
    const idleMs = limits.downloadIdleTimeoutMs;
    let sent = socket.bytesWritten;
    let lastProgress = clock.now();
    let cancel: Cancel = () => {};
    const check = (): void => {
      if (answer.writableFinished || socket.destroyed) return;
      // Progress: the socket sent something, or nothing is waiting for the client (the DIP is the slow one).
      // A wall clock stepped back counts from the step too: idleness would otherwise wait for the step.
      if (!answer.writableNeedDrain || socket.bytesWritten !== sent || clock.now() < lastProgress) {
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
