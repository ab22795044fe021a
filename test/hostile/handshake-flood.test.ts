/**
 * Connections without a certificate on the participant listener (the security review's HIGH finding):
 * 110 bare TCP sockets that send nothing held every place of `http.maxConnections: 100`, and a properly
 * signed pull from a participant met ECONNRESET until the handshake deadline freed them. A client address
 * holds at most `http.maxConnectionsPerAddress` connections from their accept, handshakes included; a
 * connection that has sent no byte is closed after `http.firstByteTimeoutMs`; and connections still in
 * their handshake take at most the share of the cap `http.authenticatedReservePercent` leaves them.
 * Real sockets, from other loopback addresses (127.0.0.2, …) than the participant's (127.0.0.1); the
 * deadlines that would otherwise free the places are set long (60 s), so only the caps can; nothing sleeps.
 */
import diagnostics from 'node:diagnostics_channel';
import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, type DipConfig } from '../../src/config.js';
import { adminApi } from '../helpers/admin.js';
import { startTestDip, waitFor, type TestDip } from '../helpers/dip-harness.js';
import { metricOf } from './helpers.js';

const SUP = '1000000001';
/** Every socket a case opened, destroyed after it (a DIP closing waits for its connections). */
const opened: net.Socket[] = [];
const dips: TestDip[] = [];

afterEach(() => {
  for (const s of opened.splice(0)) s.destroy();
});
afterAll(async () => {
  for (const t of dips) await t.close();
});

async function dip(http: Partial<DipConfig['http']>): Promise<TestDip> {
  const t = await startTestDip({
    http: { ...DEFAULTS.http, handshakeTimeoutMs: 60_000, headersTimeoutMs: 60_000, firstByteTimeoutMs: 60_000, ...http },
    observability: { ...DEFAULTS.observability, alarms: { ...DEFAULTS.observability.alarms, evaluateIntervalMs: 50 } },
  });
  dips.push(t);
  return t;
}

/** `n` TCP connections from `from` that send nothing, not even a TLS hello: each settles connected, or closed by the DIP. */
async function silent(t: TestDip, from: string, n: number, write?: Buffer): Promise<{ open: () => number }> {
  const sockets = Array.from({ length: n }, () => {
    const s = net.connect({ host: '127.0.0.1', port: t.dip.port, localAddress: from });
    s.on('error', () => {});
    if (write) s.write(write);
    opened.push(s);
    return s;
  });
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => (s.once('connect', () => resolve()), s.once('close', () => resolve())))));
  return { open: () => sockets.filter((s) => !s.destroyed && !s.readableEnded).length };
}

/** The accepted ones among `sockets` settle: every one the DIP refused is closed before the case goes on. */
async function settled(what: string, check: () => boolean): Promise<void> {
  await waitFor(check, 10_000, what);
}

/** A signed pull by the supplier on a connection of its own (its client's pool is empty until now). */
async function signedPull(t: TestDip): Promise<number> {
  const sup = await t.participant(SUP, ['SUP']);
  return (await sup.client.pull('IF-021', SUP)).status;
}

describe('the participant listener: sockets without a certificate cannot hold its places', () => {
  it('110 silent sockets from one address take at most its cap (http.maxConnectionsPerAddress); a signed pull from another is served', async () => {
    const t = await dip({ maxConnections: 100, maxConnectionsPerAddress: 10, authenticatedReservePercent: 0 });
    const flood = await silent(t, '127.0.0.2', 110);
    await settled("the address's sockets past its cap to be closed", () => flood.open() <= 10);
    expect(flood.open()).toBe(10);
    expect(await signedPull(t)).toBe(200);
    expect(await metricOf(t, 'dip_handshakes_refused_total{listener="participant",reason="address"}')).toBe(100);
  });

  it('silent sockets from many addresses take at most the share of the cap left to handshakes (http.authenticatedReservePercent); a signed pull is served and connections-exhausted raised', async () => {
    const t = await dip({ maxConnections: 40, maxConnectionsPerAddress: 4, authenticatedReservePercent: 50 });
    const floods = await Promise.all(Array.from({ length: 15 }, (_, i) => silent(t, `127.0.0.${10 + i}`, 4)));
    const open = () => floods.reduce((n, f) => n + f.open(), 0);
    await settled('the oldest silent sockets past the handshakes’ share to be closed', () => open() <= 20);
    expect(open()).toBe(20);
    expect(await signedPull(t)).toBe(200);
    expect(await metricOf(t, 'dip_handshakes_refused_total{listener="participant",reason="displaced"}')).toBeGreaterThanOrEqual(40);
    const admin = adminApi(t);
    await waitFor(async () => ((await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string }>).some((a) => a.rule === 'connections-exhausted'), 10_000, 'the connections-exhausted alarm');
  });

  it('a full listener closes its oldest connection still in its handshake for a new one, whatever the reserve', async () => {
    const t = await dip({ maxConnections: 20, maxConnectionsPerAddress: 0, authenticatedReservePercent: 0 });
    const flood = await silent(t, '127.0.0.2', 30);
    await settled('the flood to leave a place free', () => flood.open() <= 19);
    expect(await signedPull(t)).toBe(200);
  });

  it('a full listener keeps a connection that finished its handshake: the same kept-alive connection is served after the flood', async () => {
    // useHandshakeGuard closes the oldest connection still in its handshake; one matched wrongly to its
    // TLS socket would count an established connection as handshaking and close it for the flood.
    const t = await dip({ maxConnections: 20, maxConnectionsPerAddress: 0, authenticatedReservePercent: 0 });
    // The local ports of the connections the participant's client (undici) opened to the listener.
    const ports: number[] = [];
    const connected = (message: unknown) => {
      const socket = (message as { socket: net.Socket }).socket;
      if (socket.remotePort === t.dip.port) ports.push(socket.localPort ?? 0);
    };
    diagnostics.subscribe('undici:client:connected', connected);
    try {
      const sup = await t.participant(SUP, ['SUP']);
      expect((await sup.client.pull('IF-021', SUP)).status).toBe(200);
      expect(ports).toHaveLength(1);
      const flood = await silent(t, '127.0.0.2', 30);
      // Full: 20 places, the established connection in one and one kept free for a new connection.
      await settled('the flood to fill the places the established connection leaves', () => flood.open() <= 18);
      expect(flood.open()).toBe(18);
      expect((await sup.client.pull('IF-021', SUP)).status).toBe(200);
      expect(ports, 'the second pull went on the connection of the first').toHaveLength(1);
    } finally {
      diagnostics.unsubscribe('undici:client:connected', connected);
    }
  });

  it('closes a connection that sent no byte after http.firstByteTimeoutMs, not one that started its handshake', async () => {
    const t = await dip({ firstByteTimeoutMs: 200 });
    // A TLS record header: the start of a hello, never finished (the handshake deadline, 60 s here, is its bound).
    const [mute, talking] = await Promise.all([silent(t, '127.0.0.2', 1), silent(t, '127.0.0.3', 1, Buffer.from([0x16, 0x03, 0x01]))]);
    await settled('the silent socket to be closed', () => mute.open() === 0);
    expect(talking.open()).toBe(1);
    expect(await metricOf(t, 'dip_handshakes_refused_total{listener="participant",reason="silent"}')).toBe(1);
  });
});
