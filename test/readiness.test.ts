import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

describe('GET /ready while the interface catalogue is loading', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  let compiled = 0;

  beforeAll(async () => {
    // The validators compile one channel at a time after start (warmCatalogue); the test holds the
    // second pause, so the node is up with one channel compiled and the rest waiting.
    t = await startTestDip({ warmCatalogue: true }, undefined, {
      warmPause: () => {
        compiled += 1;
        return compiled === 1 ? Promise.resolve() : held;
      },
    });
    sds = await t.participant('2000000001', ['SDS']);
  });
  afterAll(async () => {
    release();
    await t?.close();
  });

  it('answers 503 "loading" with how far it is, while /health (liveness) answers 200; ready once the last validator is compiled', async () => {
    await waitFor(() => compiled === 2, 10_000, 'the warm-up to reach the held pause');
    const notYet = await sds.client.call<{ status: string; reason: string }>('GET', '/ready', '');
    expect(notYet.status).toBe(503);
    expect(notYet.body.status).toBe('loading');
    expect(notYet.body.reason).toBe(`the interface catalogue is loading: 2 of ${Catalogue.load().channels().length} channels' validators compiled`);
    expect((await sds.client.call('GET', '/health', '')).status).toBe(200);
    // The operator listener's health (what the Kubernetes example and dip cluster's balancer probe) agrees.
    const admin = () => fetch(`http://127.0.0.1:${t.dip.adminPort}/admin/health`, { headers: { authorization: `Bearer ${readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim()}` } });
    const loading = await admin();
    expect(loading.status).toBe(503);
    expect(await loading.json()).toMatchObject({ storage: { state: 'ok' }, loading: notYet.body.reason });

    release();
    await waitFor(async () => (await sds.client.call('GET', '/ready', '')).status === 200, 60_000, 'every validator compiled');
    expect((await sds.client.call('GET', '/ready', '')).body).toEqual({ status: 'ok' });
    const ready = await admin();
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ storage: { state: 'ok' }, loading: null });
    // And it takes messages.
    await t.participant('1000000001', ['SUP']);
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: 'ready1' });
    expect((await sds.client.submit('IF-021', [item])).status).toBe(201);
  });
});
