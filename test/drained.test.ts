/**
 * drained (src/api/request.ts): a refused request's body is read to its end before the answer and the
 * close (closed unread, the socket resets and the client loses the answer), but not for ever: an idle
 * pause, a time limit, and a byte limit (a sender declaring gigabytes is not read at line rate).
 */
import type { IncomingMessage } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { drained } from '../src/api/request.js';

/** A request body still arriving (complete: false), fed by the test. */
const arriving = (): PassThrough & { complete: boolean } => Object.assign(new PassThrough(), { complete: false });
const settledYet = (p: Promise<void>): Promise<boolean> => Promise.race([p.then(() => true), new Promise<boolean>((r) => setImmediate(() => r(false)))]);

describe('drained', () => {
  it('waits while bytes keep coming and resolves at the end of the body', async () => {
    const body = arriving();
    const done = drained(body as unknown as IncomingMessage, { idleMs: 60_000, maxMs: 60_000, maxBytes: 1_000 });
    body.write(Buffer.alloc(600));
    expect(await settledYet(done)).toBe(false);
    body.end(Buffer.alloc(300));
    await done;
  });

  it('stops reading once more than maxBytes came, without waiting for the end or the idle pause', async () => {
    const body = arriving();
    const done = drained(body as unknown as IncomingMessage, { idleMs: 60_000, maxMs: 60_000, maxBytes: 1_000 });
    body.write(Buffer.alloc(600));
    expect(await settledYet(done)).toBe(false);
    body.write(Buffer.alloc(600));
    expect(await settledYet(done)).toBe(true);
  });

  it('does not take a stalled event loop for an idle sender: bytes waiting on the socket when the idle timer fires are read first', async () => {
    // A process starved of CPU (a loaded machine) wakes with the idle timer overdue and the sender's
    // bytes waiting; timers run before the poll phase that would read them, and the body was called
    // idle and the connection closed unread (a reset: hostile/bodies lost its 413 in a loaded CI).
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<Socket>((r) => server.once('connection', r));
    const sender = connect((server.address() as { port: number }).port, '127.0.0.1');
    const socket = await accepted;
    try {
      const body = Object.assign(socket, { complete: false });
      let read = 0;
      socket.on('data', (d: Buffer) => (read += d.length));
      const done = drained(body as unknown as IncomingMessage, { idleMs: 50, maxMs: 60_000 });
      sender.write(Buffer.alloc(1000));
      // The loop held past the idle pause while the bytes arrive on the socket.
      const until = Date.now() + 150;
      while (Date.now() < until);
      // One turn of the loop: its timers (the overdue idle one), then its poll phase (the bytes).
      await new Promise((r) => setTimeout(r, 0));
      const settled = await settledYet(done);
      expect({ settled, read }).toEqual({ settled: false, read: 1000 });
      sender.end();
      await done;
    } finally {
      sender.destroy();
      socket.destroy();
      server.close();
    }
  });
});
