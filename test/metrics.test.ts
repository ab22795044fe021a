import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../src/ports/errors.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

describe('GET /metrics (Prometheus text format, operator listener)', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let down = true;
  let token: string;

  beforeAll(async () => {
    t = await startTestDip();
    token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const r = await t.receiver(() => (down ? 503 : 200));
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${r.url}dip` })).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
  });

  const scrape = async (): Promise<PrometheusFamily[]> => {
    const res = await fetch(`http://127.0.0.1:${t.dip.adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    return parsePrometheusTextFormat(await res.text());
  };
  const family = (all: PrometheusFamily[], name: string) => all.find((f) => f.name === name);
  const depth = (all: PrometheusFamily[]) =>
    Number(family(all, 'dip_queue_depth')?.metrics.find((m) => m.labels?.recipient === '1000000001' && m.labels.channel === 'IF-021')?.value ?? 0);
  const send = async (n: number, tag: string) => {
    const items = Array.from({ length: n }, (_, i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: `${tag}${i}` }));
    expect((await sds.client.submit('IF-021', items)).status).toBe(201);
  };

  it('shows the queue depth growing while a recipient is down, and draining when it is back', async () => {
    expect(depth(await scrape())).toBe(0);
    await send(1, 'a');
    const first = await scrape();
    expect(depth(first)).toBe(1);
    await send(2, 'b');
    const second = await scrape();
    expect(depth(second)).toBe(3);
    expect(family(second, 'dip_queue_depth')?.type).toBe('GAUGE');
    expect(Number(family(second, 'dip_queue_oldest_age_seconds')?.metrics[0]?.value)).toBeGreaterThanOrEqual(0);
    expect(family(second, 'dip_ingested_messages_total')?.metrics.find((m) => m.labels?.channel === 'IF-021')?.value).toBe('3');
    expect(family(second, 'dip_http_requests_total')?.metrics.find((m) => m.labels?.route === '/dip-channel/:id' && m.labels.status === '201')?.value).toBe('2');
    await waitFor(async () => (family(await scrape(), 'dip_delivery_attempts_total')?.metrics.find((m) => m.labels?.verdict === 'retry')?.value ?? '0') !== '0', 10_000, 'a failed call');

    down = false;
    await waitFor(async () => depth(await scrape()) === 0, 20_000, 'the queue to drain');
    // The call's journal entry is written just after the queue settles.
    const delivered = (f: PrometheusFamily[]) => family(f, 'dip_delivery_attempts_total')?.metrics.find((m) => m.labels?.verdict === 'delivered');
    await waitFor(async () => delivered(await scrape()) !== undefined, 10_000, 'the delivered call counted');
    const after = await scrape();
    const latency = family(after, 'dip_delivery_latency_seconds');
    expect(latency?.type).toBe('HISTOGRAM');
    const calls = Number(delivered(after)?.value) + Number(family(after, 'dip_delivery_attempts_total')?.metrics.find((m) => m.labels?.verdict === 'retry')?.value);
    // Every call counted is in the histogram, in the +Inf bucket at least.
    expect(Number(latency?.metrics[0]?.count)).toBe(calls);
    expect(Number(latency?.metrics[0]?.buckets?.['+Inf'])).toBe(calls);
    expect(Number(family(after, 'dip_storage_ok')?.metrics[0]?.value)).toBe(1);
    expect(family(after, 'dip_process_process_cpu_seconds_total')).toBeDefined();
  });

  it('answers a scrape while the store cannot be read: everything but the queue gauges, without asking a store known to be down', async () => {
    await send(1, 'c');
    const log = t.dip.backend.log;
    const pendingQueues = log.pendingQueues.bind(log);
    // Other readers (the sweep, alarms) call it too: held calls are answered when the store is back.
    const held: Array<() => void> = [];
    let mode: 'fail' | 'hang' = 'fail';
    log.pendingQueues = () => {
      if (mode === 'fail') return Promise.reject(new StoreError('unavailable', 'PostgreSQL: connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'));
      return new Promise((resolve, reject) => held.push(() => void pendingQueues().then(resolve, reject)));
    };
    try {
      // The read fails: the scrape is still answered (a 503 left Prometheus blind during the outage), the
      // queue gauges without samples (unknown, not 0) and the failed read counted.
      const failed = await scrape();
      expect(family(failed, 'dip_queue_depth')?.metrics ?? []).toEqual([]);
      expect(family(failed, 'dip_queue_depth_read_errors_total')?.metrics[0]?.value).toBe('1');
      expect(family(failed, 'dip_ingested_messages_total')).toBeDefined();
      // The store known to be down, and a read that would wait (a server cut off): not asked, answered at once.
      mode = 'hang';
      t.dip.metrics.health({ state: 'unavailable', reason: 'PostgreSQL: connect ECONNREFUSED', code: 'ECONNREFUSED' });
      const down = await scrape();
      expect(Number(family(down, 'dip_storage_ok')?.metrics[0]?.value)).toBe(0);
      expect(family(down, 'dip_queue_depth')?.metrics ?? []).toEqual([]);
    } finally {
      log.pendingQueues = pendingQueues;
      for (const answer of held.splice(0)) answer();
      t.dip.metrics.health({ state: 'ok' });
    }
    await waitFor(async () => depth(await scrape()) === 0, 10_000, 'the queue gauges back');
    expect(Number(family(await scrape(), 'dip_storage_ok')?.metrics[0]?.value)).toBe(1);
  });

  it('is refused without the operator token', async () => {
    expect((await fetch(`http://127.0.0.1:${t.dip.adminPort}/metrics`)).status).toBe(401);
  });
});
