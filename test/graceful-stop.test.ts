import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Agent, request } from 'undici';
import { openActivityLog } from '../src/adapters/backend.js';
import { systemClock } from '../src/adapters/clock.js';
import { adminTokenFile } from '../src/api/admin.js';
import { afterAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { DEFAULTS } from '../src/config.js';
import { buildIF021 } from '../src/sim/messages.js';
import { queueSettled, startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

const ref = (m: unknown): string => (m as { payload: { CommonBlock: { S1: { senderUniqueReference: string } } } }).payload.CommonBlock.S1.senderUniqueReference;

/**
 * A fault campaign's SIGTERM under load (`dip serve` stops by closing the DIP, as here): submissions in
 * flight on kept-alive connections are answered 201 or refused 503 with Retry-After in the DIP's own
 * answer shape, never Fastify's bare one; nothing answered 201 is lost, and the DIP started again on the
 * same data delivers every one of them once.
 */
describe('a graceful stop under load', () => {
  const dips: TestDip[] = [];
  afterAll(async () => {
    for (const d of dips) await d.close().catch(() => {});
  });

  it('answers every request it read 201 or 503 with Retry-After, loses nothing answered 201, and delivers it after a restart', async () => {
    const first = await startTestDip({ http: DEFAULTS.http });
    dips.push(first);
    const sds = await first.participant('2000000001', ['SDS']);
    const sup = await first.participant('1000000001', ['SUP']);
    let n = 0;
    const accepted: string[] = [];
    const refused: Array<{ status: number; retryAfter: unknown; help: unknown }> = [];
    const failed: string[] = [];
    let stopping = false;
    const sender = async () => {
      while (!stopping) {
        const items = Array.from({ length: 20 }, () => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `gs${n++}` }));
        try {
          const answer = await sds.client.submit('IF-021', items);
          if (answer.status === 201) accepted.push(...items.map((i) => i.payload.CommonBlock.S1.senderUniqueReference));
          else {
            refused.push({ status: answer.status, retryAfter: answer.headers['retry-after'], help: answer.body?.messageArray?.[0]?.help });
            return; // as a sender honouring Retry-After: the DIP has stopped by the time it would send again
          }
        } catch (e) {
          // No HTTP answer: only a connection the stopped DIP no longer takes (nothing was sent on it).
          failed.push(String((e as { code?: string }).code ?? e));
          if ((e as { code?: string }).code === 'ECONNREFUSED') return;
        }
      }
    };
    const senders = Array.from({ length: 8 }, sender);
    await waitFor(() => accepted.length >= 200, 30_000, 'load');
    await first.dip.close();
    stopping = true;
    await Promise.all(senders);

    expect(failed.filter((code) => code !== 'ECONNREFUSED')).toEqual([]);
    for (const r of refused) expect(r).toEqual({ status: 503, retryAfter: '5', help: expect.stringMatching(/the DIP is stopping/) });

    // Started again on the same data: every message answered 201 is there, and is delivered once.
    const second = await startTestDip({}, first.config.dataDir);
    dips.push(second);
    const supAgain = new DipClient({ baseUrl: second.dip.url, apiKey: sup.apiKey, keyPem: sup.credentials.keyPem, certPem: sup.credentials.certPem, caPem: second.dip.pki.ca.certPem });
    try {
      const r = await second.receiver();
      await supAgain.setWebhook('IF-021', sup.dipId, { callbackURL: r.url, maxMessageCount: 500 });
      const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
      await waitFor(() => queueSettled(second.dip, queue), 30_000, 'every message delivered');
      // Exactly the messages answered 201, each once (the senders ran side by side: compared as sets).
      const delivered = r.calls.flatMap((c) => c.messages).map(ref);
      expect([...delivered].sort()).toEqual([...accepted].sort());
    } finally {
      await supAgain.close();
    }
  });
});

/**
 * The other listeners stop the same way: each client that sends on its kept-alive connection while its
 * listener stops is answered 503 with Retry-After in the listener's own shape (the operator API's
 * {"error"}, the portals' page, the anonymous listener's StandardResponse), not Fastify's bare
 * {"error":"Service Unavailable"} nor a reset connection. The listeners stop together (one drain): each
 * client sends again and again until its own listener answers 503.
 */
describe('a graceful stop of the operator, portal and anonymous listeners', () => {
  it('answers a request on a kept-alive connection 503 with Retry-After in each listener\'s own shape, and resets none', async () => {
    const t = await startTestDip({ http: DEFAULTS.http, publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 } } });
    // One connection each, kept alive between requests.
    const agents: Agent[] = [];
    const agent = (tls: boolean) => {
      const a = new Agent({ connections: 1, pipelining: 1, keepAliveTimeout: 60_000, ...(tls ? { connect: { ca: t.dip.pki.ca.certPem } } : {}) });
      agents.push(a);
      return a;
    };
    const listeners = [
      { name: 'operator', url: `http://127.0.0.1:${t.dip.adminPort}/admin/whoami`, dispatcher: agent(false) },
      { name: 'portal', url: `${t.dip.portalUrl}/operator/sign-in`, dispatcher: agent(true) },
      { name: 'anonymous', url: `https://localhost:${t.dip.publicPort}/publications`, dispatcher: agent(true) },
    ];
    try {
      // Each connection opened and answered (401, 200, 200) before the stop.
      for (const l of listeners) {
        const before = await request(l.url, { dispatcher: l.dispatcher });
        await before.body.text();
        expect([l.name, before.statusCode]).toEqual([l.name, l.name === 'operator' ? 401 : 200]);
      }
      const answers = new Map<string, { status: number; retryAfter: unknown; connection: unknown; type: unknown; body: string } | { error: string }>();
      const stopping = t.dip.close();
      await Promise.all(
        listeners.map((l) =>
          waitFor(
            async () => {
              try {
                const res = await request(l.url, { dispatcher: l.dispatcher });
                const body = await res.body.text();
                if (res.statusCode !== 503) return false;
                answers.set(l.name, { status: res.statusCode, retryAfter: res.headers['retry-after'], connection: res.headers['connection'], type: String(res.headers['content-type']).split(';')[0], body });
              } catch (e) {
                answers.set(l.name, { error: String((e as { code?: string }).code ?? e) });
              }
              return true;
            },
            30_000,
            `the ${l.name} listener stopping`,
            5,
          ),
        ),
      );
      await stopping;
      const shaped = (name: string) => {
        const a = answers.get(name)!;
        if ('error' in a) return a;
        const { body, ...rest } = a;
        return { ...rest, help: a.type === 'text/html' ? (/the DIP is stopping[^<]*/.exec(body)?.[0] ?? body) : name === 'operator' ? (JSON.parse(body) as { error: string }).error : (JSON.parse(body) as { messageArray: Array<{ help: string }> }).messageArray[0]!.help };
      };
      const help = 'the DIP is stopping (a restart or a deployment): nothing of this request was done; send it again unchanged in 5 s';
      const answer = { status: 503, retryAfter: '5', connection: 'close', help };
      expect(Object.fromEntries(listeners.map((l) => [l.name, shaped(l.name)]))).toEqual({
        operator: { ...answer, type: 'application/json' },
        portal: { ...answer, type: 'text/html' },
        anonymous: { ...answer, type: 'application/json' },
      });
    } finally {
      for (const a of agents) await a.close().catch(() => {});
      await t.close().catch(() => {});
    }
  });
});

/**
 * All four listeners stop together: one stopping signal, seen by every listener at once, so that a stop
 * with clients holding kept-alive connections open on every listener takes one drain (http.stopDrainMs),
 * not one per listener. Told apart by the order of what the clients see, not by wall-clock thresholds:
 * every listener answers 503 before any one of them has finished draining (closed the connections its
 * clients held). Each of those 503s is in the API activity log, as every other refusal is, under the
 * request ID it answered.
 */
describe('a stop of all four listeners together', () => {
  /** A DIP stopped with an idle kept-alive client on each listener and another sending until refused 503. */
  async function stopWithClientsOnEveryListener() {
    const t = await startTestDip({ http: DEFAULTS.http, publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 } } });
    const sds = await t.participant('2000000001', ['SDS']);
    const ca = t.dip.pki.ca.certPem;
    const clientCert = { cert: sds.credentials.certPem, key: sds.credentials.keyPem };
    const listeners = [
      { name: 'participant', port: t.dip.port, path: '/dip-channel/IF-021', tls: { ca, ...clientCert } },
      { name: 'operator', port: t.dip.adminPort, path: '/admin/whoami', tls: null },
      { name: 'portal', port: Number(new URL(t.dip.portalUrl).port), path: '/operator/sign-in', tls: { ca } },
      { name: 'anonymous', port: t.dip.publicPort!, path: '/publications', tls: { ca } },
    ];
    const events: string[] = [];
    /** Each listener's 503, by the request ID it answered in x-request-id (as every other answer). */
    const refusedIds = new Map<string, unknown>();
    const sockets: Socket[] = [];
    const agents: Agent[] = [];
    try {
      // A client on each listener holding its kept-alive connection open, idle after one answer: the
      // listener waits for it (the drain) and closes it when the drain is over.
      await Promise.all(
        listeners.map(
          (l) =>
            new Promise<void>((resolve, reject) => {
              const s = l.tls ? tlsConnect({ host: '127.0.0.1', port: l.port, servername: 'localhost', ...l.tls }) : netConnect({ host: '127.0.0.1', port: l.port });
              sockets.push(s);
              s.once(l.tls ? 'secureConnect' : 'connect', () => s.write(`GET ${l.path} HTTP/1.1\r\nhost: localhost\r\nconnection: keep-alive\r\n\r\n`));
              s.once('data', () => resolve());
              s.once('error', reject);
              s.once('close', () => events.push(`drained ${l.name}`));
            }),
        ),
      );
      const stopped = t.dip.close();
      // Another client on each listener, sending until it is refused.
      await Promise.all(
        listeners.map((l) => {
          const dispatcher = new Agent(l.tls ? { connect: l.tls } : {});
          agents.push(dispatcher);
          const url = `${l.tls ? 'https://localhost' : 'http://127.0.0.1'}:${l.port}${l.path}`;
          return waitFor(
            async () => {
              const res = await request(url, { dispatcher });
              await res.body.text();
              if (res.statusCode !== 503) return false;
              events.push(`refused ${l.name}`);
              refusedIds.set(l.name, res.headers['x-request-id']);
              return true;
            },
            30_000,
            `the ${l.name} listener refusing`,
            5,
          );
        }),
      );
      await stopped;
      return { config: t.config, listeners, events, refusedIds };
    } finally {
      for (const s of sockets) s.destroy();
      for (const a of agents) await a.close().catch(() => {});
      await t.close().catch(() => {});
    }
  }

  it('refuses on every listener before any one has finished draining', async () => {
    const { listeners, events } = await stopWithClientsOnEveryListener();
    const firstDrained = events.findIndex((e) => e.startsWith('drained'));
    expect(events.slice(0, firstDrained === -1 ? events.length : firstDrained).sort()).toEqual(listeners.map((l) => `refused ${l.name}`).sort());
  });

  it('records each 503 in the activity log under the request ID it answered in x-request-id', async () => {
    const { config, listeners, refusedIds } = await stopWithClientsOnEveryListener();
    const store = await openActivityLog(config, systemClock);
    try {
      const records = await store.range({ fromMs: 0, toMs: Date.now() + 60_000, limit: 10_000 });
      for (const l of listeners) {
        const id = refusedIds.get(l.name);
        expect([l.name, typeof id, records.filter((r) => r.requestId === id).map((r) => ({ listener: r.listener, status: r.status, url: r.url }))]).toEqual([l.name, 'string', [{ listener: l.name, status: 503, url: l.path }]]);
      }
    } finally {
      await store.close();
    }
  });
});

/**
 * The health endpoints answer a stopping listener's 503 in their own shape. The listener's refusal (a
 * StandardResponse on the participant listener, `{"error"}` on the operator API) did not fit their 503
 * schemas, and its serialisation failed into a 500 "internal error": a load balancer probing `/ready`
 * during every graceful stop got a 500, logged as an internal error.
 */
describe('the health endpoints while their listener stops', () => {
  it('answer 503 in their own shape, not a 500', async () => {
    const t = await startTestDip({ http: DEFAULTS.http });
    const sds = await t.participant('2000000001', ['SDS']);
    const token = readFileSync(adminTokenFile(t.config.dataDir), 'utf8').trim();
    const urls = [`${t.dip.url}/ready`, `${t.dip.url}/health`, `http://127.0.0.1:${t.dip.adminPort}/admin/health`];
    // One kept-alive connection each, answered before the stop.
    const agents = urls.map(() => new Agent({ connections: 1, pipelining: 1, keepAliveTimeout: 60_000, connect: { ca: t.dip.pki.ca.certPem, cert: sds.credentials.certPem, key: sds.credentials.keyPem } }));
    const headers = { authorization: `Bearer ${token}` };
    try {
      for (const [i, url] of urls.entries()) {
        const before = await request(url, { dispatcher: agents[i], headers });
        await before.body.text();
        expect([url, before.statusCode]).toEqual([url, 200]);
      }
      const stopping = t.dip.close();
      const answers = new Map<string, { status: number; body: unknown }>();
      await Promise.all(
        urls.map((url, i) =>
          waitFor(
            async () => {
              const res = await request(url, { dispatcher: agents[i], headers });
              const body = await res.body.json();
              if (res.statusCode === 200) return false;
              answers.set(url, { status: res.statusCode, body });
              return true;
            },
            10_000,
            `${url} while stopping`,
          ),
        ),
      );
      await stopping;
      const stoppingHelp = expect.stringMatching(/the DIP is stopping/);
      expect(answers.get(urls[0]!)).toEqual({ status: 503, body: { status: 'unavailable', reason: stoppingHelp } });
      expect(answers.get(urls[1]!)).toEqual({ status: 503, body: { status: 'unavailable', reason: stoppingHelp } });
      expect(answers.get(urls[2]!)).toMatchObject({ status: 503, body: { loading: stoppingHelp, storage: { state: 'ok' }, queues: [] } });
    } finally {
      for (const a of agents) await a.close();
    }
  });
});
