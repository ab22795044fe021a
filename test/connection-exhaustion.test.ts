import { connect, type TLSSocket } from 'node:tls';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { openFileLimit, participantConnectionLimit } from '../src/api/connection-cap.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

// File-descriptor exhaustion, as the fault campaign found it: under `prlimit --nofile=256:256` one
// participant's 400 idle mTLS connections (opened, never used) left /health and the operator API
// unreachable, with no log line or alarm. Real TLS sockets; nothing waits on a timer.

/** Every test socket, destroyed before its DIP is closed (which waits for its connections), pass or fail. */
const opened: TLSSocket[] = [];

/** Idle mTLS connections from `p`: each settles as open (handshake done, still open) or closed. */
async function idleConnections(t: TestDip, p: TestParticipant, n: number): Promise<{ sockets: TLSSocket[]; open: () => number }> {
  const sockets = Array.from({ length: n }, () => {
    const s = connect({ host: '127.0.0.1', port: t.dip.port, ca: t.dip.pki.ca.certPem, cert: p.credentials.certPem, key: p.credentials.keyPem, servername: 'localhost' });
    s.on('error', () => {});
    opened.push(s);
    return s;
  });
  const settled = sockets.map((s) => new Promise<void>((resolve) => (s.once('secureConnect', () => resolve()), s.once('close', () => resolve()))));
  await Promise.all(settled);
  return { sockets, open: () => sockets.filter((s) => !s.destroyed && !s.readableEnded).length };
}

/** GET `path` on a new connection of its own, as `p` (a monitoring probe does not share a participant's pool). */
async function fresh(t: TestDip, p: TestParticipant, path: string): Promise<number> {
  const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem, cert: p.credentials.certPem, key: p.credentials.keyPem, servername: 'localhost' } });
  try {
    const res = await request(`https://127.0.0.1:${t.dip.port}${path}`, { dispatcher: agent, headers: { host: 'localhost' } });
    await res.body.dump();
    return res.statusCode;
  } finally {
    await agent.close();
  }
}

describe('connections: one participant cannot hold the file descriptors', () => {
  let t: TestDip;
  let hog: TestParticipant;
  let other: TestParticipant;
  beforeAll(async () => {
    // A long header deadline: the idle connections are closed by the caps, not by it.
    t = await startTestDip({ http: { ...DEFAULTS.http, maxConnectionsPerClient: 4, maxConnections: 200, headersTimeoutMs: 60_000 } });
    hog = await t.participant('SUP0000001', ['SUP']);
    other = await t.participant('SUP0000002', ['SUP']);
  });
  afterAll(async () => {
    for (const s of opened) s.destroy();
    await t?.close();
  });

  it("closes a participant's idle connections at the handshake past twice its cap; another's new connection and /health still answer", async () => {
    const idle = await idleConnections(t, hog, 30);
    // 4 within the cap, 4 more waiting to be answered 429 should a request come; the rest closed at once.
    await waitFor(() => idle.open() <= 8, 10_000, "the hog's connections past twice its cap to be closed");
    expect(idle.open()).toBe(8);
    expect(await fresh(t, other, '/health')).toBe(200);
  });
});

describe('connections: the participant listener has an overall cap, and says when it is reached', () => {
  let t: TestDip;
  let hog: TestParticipant;
  let keeper: TestParticipant;
  const warnings: string[] = [];
  const logger = { info() {}, error() {}, warn: (_o: object, m?: string) => void warnings.push(m ?? '') };
  beforeAll(async () => {
    t = await startTestDip(
      {
        http: { ...DEFAULTS.http, maxConnectionsPerClient: 64, maxConnections: 10, headersTimeoutMs: 60_000 },
        observability: { ...DEFAULTS.observability, alarms: { ...DEFAULTS.observability.alarms, evaluateIntervalMs: 50 } },
      },
      undefined,
      { logger },
    );
    hog = await t.participant('SUP0000001', ['SUP']);
    keeper = await t.participant('SUP0000002', ['SUP']);
  });
  afterAll(async () => {
    for (const s of opened) s.destroy();
    await t?.close();
  });

  it('refuses connections past the cap, logs it once and raises connections-exhausted; the operator API and kept-alive participants go on', async () => {
    // The keeper's pooled connection is open before the cap is reached.
    expect((await keeper.client.call('GET', '/health', '')).status).toBe(200);
    const idle = await idleConnections(t, hog, 25);
    expect(idle.open(), 'at most the cap, less the keeper').toBeLessThanOrEqual(9);
    const admin = adminApi(t);
    let alarms: Array<{ key: string; rule: string; action: string }> = [];
    await waitFor(async () => {
      alarms = (await admin('GET', '/admin/alarms')).body.alarms;
      return alarms.some((a) => a.rule === 'connections-exhausted');
    }, 10_000, 'the connections-exhausted alarm');
    expect(alarms.find((a) => a.rule === 'connections-exhausted')).toMatchObject({ key: 'connections-exhausted:participant', action: expect.stringMatching(/http\.maxConnections/) });
    expect(warnings.filter((w) => w.includes('refuses new connections')), 'once, not per connection').toHaveLength(1);
    expect((await keeper.client.call('GET', '/health', '')).status, "the keeper's kept-alive connection").toBe(200);
  });

  it('derives the default cap from the open-file limit, keeping a quarter (at least 64) for the rest', () => {
    expect([256, 1024, 65_536].map(participantConnectionLimit)).toEqual([192, 768, 49_152]);
    expect(participantConnectionLimit(80)).toBe(16);
    expect(participantConnectionLimit(null)).toBeNull();
    expect(openFileLimit(() => 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n')).toBe(1024);
    expect(openFileLimit(() => 'Max open files            unlimited            unlimited            files\n')).toBeNull();
  });
});
