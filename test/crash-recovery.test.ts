import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import { buildIF021 } from '../src/sim/messages.js';
import { waitFor } from './helpers/dip-harness.js';
import { alive, deliveryPids, clientOf, expectDeliveredOnceInOrder, freePort, onboardDirect, startDipProcess, transactionIdOf } from './helpers/dip-process.js';

/**
 * One process on one thread (DIP_WORKERS=1, DIP_INGEST_THREADS=0), and the default topology of a 2-core
 * machine (the main process with one ingest thread, and one delivery process, README "Every core"),
 * where the delivery process is killed, then the main process with its thread while the thread is
 * taking submissions.
 */
describe.each([
  { workers: '1', threads: '0', killDeliveryProcess: false },
  { workers: '2', threads: '1', killDeliveryProcess: true },
])('kill -9 while messages stream in (DIP_WORKERS=$workers, DIP_INGEST_THREADS=$threads)', ({ workers, threads, killDeliveryProcess }) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'opendip-crash-'));
  let child: ChildProcess | undefined;
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    child?.kill('SIGKILL');
    for (const c of closers) await c();
  });

  it('delivers every message that got a 201 to every recipient, once per transaction ID and in order', async () => {
    const port = await freePort();
    const adminPort = await freePort();
    const env = { DIP_WORKERS: workers, DIP_INGEST_THREADS: threads, DIP_ADMIN_PORT: String(adminPort) };
    /** GET /admin/health on the operator listener, with the bootstrap token the DIP wrote. */
    const health = async () => {
      const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
      const res = await fetch(`http://127.0.0.1:${adminPort}/admin/health`, { headers: { authorization: `Bearer ${token}` } });
      return {
        status: res.status,
        body: (await res.json()) as { processes?: Array<{ pid: number | null; state: string; restarts: number }>; ingestThreads?: Array<{ state: string; handled: number }> },
      };
    };
    child = await startDipProcess(dataDir, port, env);
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

    // The ingest thread takes submissions once it has compiled the validators: the stream starts then.
    if (threads !== '0') await waitFor(async () => (await health()).body.ingestThreads?.every((t) => t.state === 'ready') === true, 180_000, 'the ingest thread ready');

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
    await waitFor(() => accepted.length >= 150, 60_000, '150 accepted messages');
    const deliveryProcesses = deliveryPids(child.pid!);
    expect(deliveryProcesses).toHaveLength(Number(workers) - 1);
    if (killDeliveryProcess) {
      // The delivery process dies mid-stream: the main process restarts it, ingest never stops.
      const [old] = deliveryProcesses;
      process.kill(old!, 'SIGKILL');
      const atKill = accepted.length;
      await waitFor(() => deliveryPids(child!.pid!).some((p) => p !== old), 60_000, 'a new delivery process');
      // The operator sees it: restarted once, running again under its new pid; the store (and so the status) fine throughout.
      await waitFor(async () => (await health()).body.processes?.[0]?.state === 'running', 60_000, 'the delivery process reported running');
      const h = await health();
      expect(h.status).toBe(200);
      expect(h.body.processes).toEqual([expect.objectContaining({ restarts: 1, state: 'running', pid: deliveryPids(child.pid!)[0] })]);
      await waitFor(() => accepted.length >= atKill + 150, 60_000, '150 more accepted messages');
    }
    // The thread was taking the submissions when the process died (with one request at a time, all of them).
    if (threads !== '0') expect((await health()).body.ingestThreads?.[0]?.handled).toBeGreaterThan(0);
    const before = deliveryPids(child.pid!);
    child.kill('SIGKILL');
    await stream;
    // With the main process gone its delivery processes stop too: none is left delivering beside the next start.
    await waitFor(() => before.every((p) => !alive(p)), 10_000, 'the delivery processes to exit');
    streaming = false;
    const acceptedBeforeCrash = accepted.length;

    child = await startDipProcess(dataDir, port, env);
    for (const id of Object.keys(received)) {
      const seen = () => new Set(received[id]!.flatMap((c) => c.messages.map(transactionIdOf)));
      await waitFor(() => accepted.every((t) => seen().has(t)), 60_000, `every accepted message at ${id}`);

      expectDeliveredOnceInOrder(received[id]!, accepted, acceptedBeforeCrash);
    }
  }, 300_000);
});
