import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { queueSettled, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

const SDS = '2000000001';
const SUP = '1000000001';
type Json = Record<string, any>;
const txOf = (m: unknown): string => (m as Json).payload.CommonBlock.D0.transactionID as string;

/** A webhook receiver that takes each call in and answers it only when the test lets it go. */
async function heldReceiver(): Promise<{ url: string; server: Server; calls: Array<{ headers: IncomingHttpHeaders; body: unknown[] }>; release: () => void }> {
  const calls: Array<{ headers: IncomingHttpHeaders; body: unknown[] }> = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      calls.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown[] });
      void released.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server, calls, release };
}

describe('a recipient that switches from its webhook to pulling while a call is in flight', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let hold: Awaited<ReturnType<typeof heldReceiver>>;
  beforeAll(async () => {
    t = await startTestDip();
    sds = await t.participant(SDS, ['SDS']);
    sup = await t.participant(SUP, ['SUP']);
    hold = await heldReceiver();
  });
  afterAll(async () => {
    hold?.release();
    hold?.server.closeAllConnections();
    hold?.server.close();
    await t?.close();
  });

  it('gets the positions the call carries again, at the same positions and transaction IDs (at-least-once), and loses nothing', async () => {
    expect((await sup.client.setWebhook('IF-021', SUP, { callbackURL: hold.url, maxMessageCount: 100 })).status).toBe(201);
    const items = [0, 1].map((i) => buildIF021({ senderDipId: SDS, senderRole: 'SDS', primaryRecipients: [SUP], uniqueSuffix: `handover${process.pid}x${i}` }));
    const accepted = await sds.client.submit('IF-021', items);
    expect(accepted.status).toBe(201);
    // The call is in the receiver's hands, unanswered.
    await waitFor(() => hold.calls.length === 1, 10_000, 'the webhook call');
    const call = hold.calls[0]!;
    expect(call.headers['x-opendip-sequence']).toBe('1-2');

    // The recipient removes its webhook and pulls: the call has not been answered, so nothing is settled,
    // and the pull hands out what the call carries (the queue cannot know yet whether the call delivers it).
    expect((await sup.client.deleteWebhook('IF-021', SUP)).status).toBe(204);
    const pulled = await sup.client.pull('IF-021', SUP);
    expect([pulled.status, pulled.firstSeq, pulled.lastSeq, pulled.headers['x-opendip-acknowledged']]).toEqual([200, 1, 2, '0']);
    expect(pulled.body.map(txOf)).toEqual(call.body.map(txOf));

    // The call is answered 2xx: the queue settles past it, and the pull's acknowledgement of the same
    // positions moves nothing (no error): each message reached the recipient twice, at the same positions,
    // which is how it tells the repeat (README, "For recipients": skip a position at or below the last processed).
    hold.release();
    const queue = { recipientDipId: SUP, channel: 'IF-021' };
    await waitFor(() => queueSettled(t.dip, queue), 10_000, 'the call settled');
    const ack = await sup.client.ack('IF-021', SUP, 2);
    expect([ack.status, ack.body.messageArray[0]!.help]).toEqual([200, 'already acknowledged up to 2: nothing changed']);
    const again = await sup.client.pull('IF-021', SUP);
    expect([again.status, again.body, again.headers['x-opendip-acknowledged']]).toEqual([200, [], '2']);
  });
});
