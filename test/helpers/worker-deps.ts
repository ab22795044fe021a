import { randomBytes } from 'node:crypto';
import type { WorkerDeps } from '../../src/pipeline/queue-worker.js';
import type { Clock } from '../../src/ports/clock.js';

/**
 * A queue worker's surroundings for tests that drive workers without a store or a network: the parts a
 * test does not look at answer as a quiet DIP would; `log` and `transport` are the test's own.
 */
export function workerDeps(clock: Clock, own: Pick<WorkerDeps, 'log' | 'transport'> & Partial<WorkerDeps>): WorkerDeps {
  return {
    archive: { recordAttempt: async () => {} },
    webhook: (q) => ({ recipientDipId: q.recipientDipId, channel: q.channel, url: `https://recipients.example/${q.recipientDipId}`, maxMessageCount: 500, maxPayloadKb: 1 << 20, registeredBy: q.recipientDipId }),
    signer: { sign: async () => ({}) },
    settings: { timeoutMs: 1000, retry: { baseMs: 100, capMs: 1000 }, sweepIntervalMs: 1000, gatherMs: 0 },
    clock,
    logger: { info() {}, warn() {}, error() {} },
    random: () => 1,
    randomBytes,
    staleAfterMs: () => 86_400_000,
    copyFor: (_q, { outbound }) => outbound,
    localConsumer: () => undefined,
    notices: async () => undefined,
    deadLettered: () => {},
    storeUnavailable: () => {},
    halted: () => {},
    ...own,
  };
}
