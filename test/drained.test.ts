/**
 * drained (src/api/request.ts): a refused request's body is read to its end before the answer and the
 * close (closed unread, the socket resets and the client loses the answer), but not for ever: an idle
 * pause, a time limit, and a byte limit (a sender declaring gigabytes is not read at line rate).
 */
import type { IncomingMessage } from 'node:http';
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
});
