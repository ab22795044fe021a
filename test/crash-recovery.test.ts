import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import { buildIF021 } from '../src/sim/messages.js';
import { waitFor } from './helpers/dip-harness.js';
import { clientOf, freePort, onboardDirect, startDipProcess } from './helpers/dip-process.js';

type Json = Record<string, any>;

describe('kill -9 while messages stream in', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'opendip-crash-'));
  let child: ChildProcess | undefined;
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    child?.kill('SIGKILL');
    for (const c of closers) await c();
  });

  it('delivers every message that got a 201 to every recipient, once per transaction ID and in order', async () => {
    const port = await freePort();
    child = await startDipProcess(dataDir, port);
    // Onboard as the operator does: straight into the DIP's database, from another process.
    const { ca, participants } = await onboardDirect(dataDir, [
      { dipId: '2000000001', role: 'SDS' },
      { dipId: '1000000001', role: 'SUP' },
      { dipId: '4000000001', role: 'MDS' },
    ]);
    const clientFor = (id: string) => {
      const client = clientOf(participants.get(id)!, ca, port);
      closers.push(() => client.close());
      return client;
    };

    const received: Record<string, ReceivedCall[]> = { '1000000001': [], '4000000001': [] };
    for (const id of Object.keys(received)) {
      const r = await startWebhookReceiver({ trustedCas: [ca.certPem], onCall: (c) => received[id]!.push(c) });
      closers.push(() => r.close());
      expect((await clientFor(id).setWebhook('IF-021', id, { callbackURL: r.url, maxMessageCount: 20 })).status).toBe(201);
    }

    // Stream batches of 10 from one sender, one request at a time, and kill the server mid-stream.
    const sender = clientFor('2000000001');
    const accepted: string[] = [];
    let n = 0;
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        const items = Array.from({ length: 10 }, () => buildIF021({ senderDipId: '2000000001', senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: `k${n++}` }));
        try {
          const answer = await sender.submit('IF-021', items);
          if (answer.status === 201) accepted.push(...answer.body.messageArray.map((e) => e.transactionID!));
        } catch {
          return; // the connection died with the server
        }
      }
    })();
    await waitFor(() => accepted.length >= 300, 20_000, '300 accepted messages');
    child.kill('SIGKILL');
    await stream;
    streaming = false;
    const acceptedBeforeCrash = accepted.length;

    child = await startDipProcess(dataDir, port);
    for (const id of Object.keys(received)) {
      const seen = () => new Set(received[id]!.flatMap((c) => c.messages.map((m) => (m as Json).payload.CommonBlock.D0.transactionID as string)));
      await waitFor(() => accepted.every((t) => seen().has(t)), 20_000, `every accepted message at ${id}`);

      // Order: first sightings follow acceptance order (extra messages are ones in flight at the kill,
      // stored but never answered: the sender would resend them and be told MSG1006).
      const calls = received[id]!;
      const firstSightings: string[] = [];
      const bySeq = new Map<number, string>();
      for (const c of calls) {
        expect(c.signature.ok).toBe(true);
        c.messages.forEach((m, i) => {
          const tx = (m as Json).payload.CommonBlock.D0.transactionID as string;
          const seq = c.firstSeq! + i;
          // A repeat is the same message at the same queue position: a recipient drops it by seq or transaction ID.
          if (bySeq.has(seq)) expect(bySeq.get(seq)).toBe(tx);
          else {
            bySeq.set(seq, tx);
            firstSightings.push(tx);
          }
        });
      }
      expect(firstSightings.slice(0, acceptedBeforeCrash)).toEqual(accepted.slice(0, acceptedBeforeCrash));
      expect(new Set(firstSightings).size).toBe(firstSightings.length);
      const seqs = [...bySeq.keys()].sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    }
  }, 90_000);
});
