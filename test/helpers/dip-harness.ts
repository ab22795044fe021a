import { mkdtempSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onboardParticipant } from '../../src/pipeline/participants.js';
import { startDip, type RunningDip, type StartOptions } from '../../src/app.js';
import { DipClient } from '../../src/client/dip-client.js';
import { startWebhookReceiver, type ReceivedCall, type WebhookReceiver } from '../../src/client/webhook-receiver.js';
import { loadConfig, type DipConfig } from '../../src/config.js';
import type { Logger } from '../../src/ports/logger.js';
import type { QueueRef } from '../../src/ports/message-log.js';
import { issueParticipantCertificate, type KeyAndCert } from '../../src/security/pki.js';

export const quietLogger: Logger = { info() {}, warn() {}, error() {} };

export interface TestParticipant {
  dipId: string;
  roles: string[];
  apiKey: string;
  credentials: KeyAndCert;
  client: DipClient;
}

export interface TestDip {
  dip: RunningDip;
  config: DipConfig;
  participant(dipId: string, roles: string[]): Promise<TestParticipant>;
  /** A webhook receiver that records every verified call. */
  receiver(respond?: (call: ReceivedCall) => number): Promise<WebhookReceiver & { calls: ReceivedCall[] }>;
  close(): Promise<void>;
}

/** A real DIP on an ephemeral port over real HTTPS, with its SQLite file in a fresh directory. */
export async function startTestDip(
  overrides: Partial<DipConfig> = {},
  dataDir = mkdtempSync(join(tmpdir(), 'opendip-')),
  options: StartOptions & { logger?: Logger } = {},
): Promise<TestDip> {
  const { logger = quietLogger, ...start } = options;
  // A stopping listener waits for its clients to close their connections (http.stopDrainMs, 2 s): a test's
  // fetch to the operator API keeps one open for 4 s, and every close waited the whole drain for it. Short
  // here; test/graceful-stop.test.ts, which is about the drain, asks for the default.
  const http = { ...loadConfig({}).http, stopDrainMs: 250, ...overrides.http };
  const config = loadConfig({}, { dataDir, port: 0, adminPort: 0, sweepIntervalSeconds: 0.2, warmCatalogue: false, host: '127.0.0.1', ...overrides, http, delivery: { ...loadConfig({}).delivery, retryBaseMs: 50, retryCapMs: 500, ...overrides.delivery } });
  const dip = await startDip(config, logger, start);
  const closers: Array<() => Promise<void>> = [];
  return {
    dip,
    config,
    async participant(dipId, roles) {
      const credentials = await issueParticipantCertificate(dip.pki.ca, { organisation: `Org ${dipId}`, dipIds: [dipId], environment: config.environment, validDays: 30 });
      const { apiKey } = await onboardParticipant(dip.backend.registry, { dipId, roles, certificatePem: credentials.certPem });
      // Participants' clocks agree with the DIP's (a test that moves the DIP's clock moves theirs).
      const now = options.clock ? () => new Date(options.clock!.now()) : undefined;
      const client = new DipClient({ baseUrl: dip.url, apiKey, keyPem: credentials.keyPem, certPem: credentials.certPem, caPem: dip.pki.ca.certPem, now });
      closers.push(() => client.close());
      return { dipId, roles, apiKey, credentials, client };
    },
    async receiver(respond) {
      const calls: ReceivedCall[] = [];
      const r = await startWebhookReceiver({ trustedCas: [dip.pki.ca.certPem], respond, onCall: (c) => calls.push(c) });
      closers.push(() => r.close());
      return Object.assign(r, { calls });
    },
    async close() {
      for (const c of closers.reverse()) await c();
      await dip.close();
    },
  };
}

/**
 * Polls a condition that real sockets and processes will make true, with a deadline (never a fixed sleep).
 * `pollMs`: between two checks; longer where each check asks a system under test that must not be loaded by it.
 */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition', pollMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * The queue's worker has nothing in hand and nothing scheduled: it is idle with no retry pending, so no
 * call leaves for this queue until something kicks it (an append, a sweep, a new webhook, a resume).
 */
export function queueIdle(dip: RunningDip, queue: QueueRef): boolean {
  const worker = dip.delivery.status().find((s) => s.queue.recipientDipId === queue.recipientDipId && s.queue.channel === queue.channel);
  return worker !== undefined && worker.state === 'idle' && worker.retryAt === null;
}

/**
 * Everything appended to the queue so far is settled (delivered, or set aside) and its worker is idle:
 * what a test waits for before it asserts that nothing more arrived, instead of sleeping.
 */
export async function queueSettled(dip: RunningDip, queue: QueueRef): Promise<boolean> {
  const state = await dip.backend.log.queueState(queue);
  return state.ackedSeq === state.headSeq && queueIdle(dip, queue);
}

/**
 * A test DIP with one supplier (1000000001), started before the calling describe's tests and closed
 * after them: `dip.t` and `dip.sup` are there once they run.
 */
export function dipWithSupplier(): { t: TestDip; sup: TestParticipant } {
  const dip = {} as { t: TestDip; sup: TestParticipant };
  beforeAll(async () => {
    dip.t = await startTestDip();
    dip.sup = await dip.t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => dip.t?.close());
  return dip;
}
