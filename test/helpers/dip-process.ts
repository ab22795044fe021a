import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { openBackend } from '../../src/adapters/backend.js';
import { loadConfig } from '../../src/config.js';
import { onboardParticipant } from '../../src/pipeline/participants.js';
import { DipClient } from '../../src/client/dip-client.js';
import { createEnvironmentCa, issueParticipantCertificate, PKI_FILES, readCertificateAuthority, type KeyAndCert } from '../../src/security/pki.js';
import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { ReceivedCall } from '../../src/client/webhook-receiver.js';
import { waitFor } from './dip-harness.js';

/** A port that was free a moment ago: a restarted DIP must come back on the port its clients know. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The DIP as users run it (`dip serve`), in its own process so that it can be killed with SIGKILL. */
export async function startDipProcess(dataDir: string, port: number, env: Record<string, string> = {}): Promise<ChildProcess> {
  // `dip serve` uses every core by default (DIP_WORKERS unset: delivery processes beside the main one).
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    env: { ...process.env, DIP_DATA_DIR: dataDir, DIP_PORT: String(port), DIP_HOST: '127.0.0.1', DIP_ADMIN_PORT: '0', DIP_PORTAL_PORT: '0', DIP_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // Generous: on a loaded 2-core machine the start (catalogue warm-up, delivery processes) takes 20-40 s.
  await waitFor(() => err.includes('is listening on') || child.exitCode !== null, 90_000, 'the DIP to start');
  if (child.exitCode !== null) throw new Error(`dip serve exited: ${err}`);
  return child;
}

/** SIGKILL, and wait until the process is gone (its files are then what a restart finds). */
export async function killDipProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await gone;
}

export interface OnboardedParticipant {
  dipId: string;
  apiKey: string;
  credentials: KeyAndCert;
}

/**
 * Onboards participants as the operator does (`dip pki issue` + `dip participant add`): certificates
 * from the environment's CA in <dataDir>/pki (created first if the DIP never ran there) and rows
 * straight into the DIP's database (the backend its configuration picks), from this process.
 */
export async function onboardDirect(
  dataDir: string,
  participants: ReadonlyArray<{ dipId: string; role: string }>,
): Promise<{ ca: KeyAndCert; participants: Map<string, OnboardedParticipant> }> {
  const pki = join(dataDir, 'pki');
  const ca = existsSync(join(pki, PKI_FILES.caKey)) ? await readCertificateAuthority(pki) : await createEnvironmentCa(pki, { environment: 'DEV' });
  const { backend } = await openBackend(loadConfig({}, { dataDir }));
  const onboarded = new Map<string, OnboardedParticipant>();
  try {
    for (const { dipId, role } of participants) {
      const credentials = await issueParticipantCertificate(ca, { organisation: dipId, dipIds: [dipId], environment: 'DEV', validDays: 5 });
      const { apiKey } = await onboardParticipant(backend.registry, { dipId, roles: [role], certificatePem: credentials.certPem });
      onboarded.set(dipId, { dipId, apiKey, credentials });
    }
  } finally {
    await backend.close();
  }
  return { ca, participants: onboarded };
}

/** A participant's client for a DIP on 127.0.0.1:port. */
export function clientOf(p: OnboardedParticipant, ca: KeyAndCert, port: number): DipClient {
  return new DipClient({ baseUrl: `https://127.0.0.1:${port}`, apiKey: p.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: ca.certPem });
}

/** The delivery processes of the DIP whose main process is `pid` (from /proc: its children running delivery-process). */
export function deliveryPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== pid) continue;
      // Not tsx's compiler service, which the main process may also have started.
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('delivery-process')) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * What a crash may and may not do to one recipient's deliveries: every message answered 201 arrives;
 * repeats are the same message at the same queue position (a call in flight at the kill, made again); first
 * sightings follow acceptance order (messages beyond `accepted` were stored but never answered); queue
 * positions are 1, 2, 3, … with no gap.
 */
export function expectDeliveredOnceInOrder(calls: readonly ReceivedCall[], accepted: readonly string[], acceptedBeforeCrash: number): void {
  const firstSightings: string[] = [];
  const bySeq = new Map<number, string>();
  for (const c of calls) {
    expect(c.signature.ok).toBe(true);
    c.messages.forEach((m, i) => {
      const tx = transactionIdOf(m);
      const seq = c.firstSeq! + i;
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

/** D0.transactionID of a delivered message. */
export function transactionIdOf(m: unknown): string {
  return (m as { payload: { CommonBlock: { D0: { transactionID: string } } } }).payload.CommonBlock.D0.transactionID;
}
