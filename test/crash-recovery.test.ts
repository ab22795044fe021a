import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { onboardParticipant } from '../src/pipeline/participants.js';
import { openBackend } from '../src/adapters/backend.js';
import { loadConfig } from '../src/config.js';
import { DipClient } from '../src/client/dip-client.js';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import { issueParticipantCertificate, type KeyAndCert } from '../src/security/pki.js';
import { buildIF021 } from '../src/sim/messages.js';
import { waitFor } from './helpers/dip-harness.js';

type Json = Record<string, any>;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The DIP as users run it (`dip serve`), in its own process so that it can be killed with SIGKILL. */
async function startServer(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    env: { ...process.env, DIP_DATA_DIR: dataDir, DIP_PORT: String(port), DIP_HOST: '127.0.0.1', DIP_ADMIN_PORT: '0', DIP_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => err.includes('is listening on') || child.exitCode !== null, 30_000, 'the DIP to start');
  if (child.exitCode !== null) throw new Error(`dip serve exited: ${err}`);
  return child;
}

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
    child = await startServer(dataDir, port);
    const ca = {
      keyPem: readFileSync(join(dataDir, 'pki', 'ca.key.pem'), 'utf8'),
      certPem: readFileSync(join(dataDir, 'pki', 'ca.cert.pem'), 'utf8'),
    };
    // Onboard as the operator does: straight into the DIP's database, from another process.
    const { backend } = await openBackend(loadConfig({}, { dataDir }));
    const creds = new Map<string, { apiKey: string; kc: KeyAndCert }>();
    for (const [id, role] of [
      ['2000000001', 'SDS'],
      ['1000000001', 'SUP'],
      ['4000000001', 'MDS'],
    ] as const) {
      const kc = await issueParticipantCertificate(ca, { organisation: id, dipIds: [id], environment: 'DEV', validDays: 5 });
      const { apiKey } = await onboardParticipant(backend.registry, { dipId: id, roles: [role], certificatePem: kc.certPem });
      creds.set(id, { apiKey, kc });
    }
    await backend.close();
    const clientFor = (id: string) => {
      const c = creds.get(id)!;
      const client = new DipClient({ baseUrl: `https://127.0.0.1:${port}`, apiKey: c.apiKey, keyPem: c.kc.keyPem, certPem: c.kc.certPem, caPem: ca.certPem });
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

    child = await startServer(dataDir, port);
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
