/**
 * Two DIP nodes whose wall clocks disagree (the second runs DIP_CLOCK_SKEW_MS ahead, preloaded by
 * skewed-clock.mjs), one NATS server, a PostgreSQL of its own: queue leases must not move between live
 * nodes because of it, and every 201'd message reaches each recipient once, in order.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { load, log, market, until, verify, faultCluster } from './load.js';

const SKEW_MS = Number(process.env.FAULTS_SKEW_MS ?? 8_000);

describe(`two DIP nodes whose clocks are ${SKEW_MS} ms apart`, () => {
  const cluster = faultCluster('skew', {
    natsNodes: 1,
    dipNodes: 2,
    nodeEnv: [undefined, { NODE_OPTIONS: `--import ${resolve('test/faults/skewed-clock.mjs')}`, DIP_CLOCK_SKEW_MS: String(SKEW_MS) }],
  });
  const dip = () => cluster.dip();

  beforeAll(() => cluster.start(), 300_000);
  afterAll(() => cluster.stop(), 120_000);

  it('no lease taken from a live holder; everything delivered once, in order', async () => {
    const { senders, recipients } = await market(dip(), 'E', { senders: 2, recipients: 4 });
    const l = load('E', senders, recipients, { batchSize: 5, route: (b, i, _s, r) => [r[(b + i) % 4]!, r[(b + i + 1) % 4]!], paceMs: 100 });
    const startedAt = Date.now();
    await until(() => Date.now() - startedAt > 30_000, 40_000, '30 s of load');
    await l.stop();
    const redelivered = await verify(l.accepted, recipients);
    const takenOver = cluster.topology.dipNodes.map((n) => (readFileSync(join(cluster.dir, `${n.name}.log`), 'utf8').match(/taken over by another node/g) ?? []).length);
    log(`skew ${SKEW_MS} ms: submitted ${l.stats().submitted}, 201 ${l.accepted.length}, redelivered ${redelivered}, leases lost to a live node (by node) ${takenOver.join(', ')}`);
    expect(takenOver, 'leases taken from a live holder').toEqual([0, 0]);
    expect(redelivered).toBe(0);
  }, 300_000);
});
