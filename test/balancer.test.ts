/**
 * `dip cluster`'s TCP balancer (src/cli/cluster/balancer.ts) over real sockets: a node its probe takes
 * out loses the connections it carries, so kept-alive clients reconnect to a ready node instead of
 * waiting on a paused one (found by a fault campaign: a 20 s pause of one node stopped every kept-alive
 * sender for 20 s); new connections go to ready nodes only. Not at a single failed probe (a blip): only
 * once a node fails SHUTDOWN_AFTER_FAILED_PROBES in a row.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TcpBalancer, type Backend } from '../src/cli/cluster/balancer.js';
import { waitFor } from './helpers/dip-harness.js';

/** A backend that answers every line with its name. */
async function namedServer(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.on('data', () => s.write(name)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('the TCP balancer of dip cluster', () => {
  const ready = new Map<string, boolean>([
    ['a', true],
    ['b', true],
  ]);
  let servers: Server[] = [];
  let balancer: TcpBalancer;
  let port: number;
  let probes = 0;
  /** A node whose next probe alone fails (a blip). */
  let blipping: string | null = null;

  beforeAll(async () => {
    const [a, b] = await Promise.all([namedServer('a'), namedServer('b')]);
    servers = [a.server, b.server];
    const backends: Backend[] = [
      { name: 'a', host: '127.0.0.1', port: a.port, healthy: null },
      { name: 'b', host: '127.0.0.1', port: b.port, healthy: null },
    ];
    const probe = async (x: Backend) => {
      probes += 1;
      if (x.name === blipping) {
        blipping = null;
        return false;
      }
      return ready.get(x.name) ?? false;
    };
    balancer = new TcpBalancer(backends, { host: '127.0.0.1', port: 0, probe, probeEveryMs: 50, connectTimeoutMs: 1000, log: () => {} });
    port = await balancer.start();
  });
  afterAll(async () => {
    await balancer?.stop();
    for (const s of servers) s.close();
  });

  const open = async (): Promise<{ socket: Socket; ask: () => Promise<string>; closed: () => boolean }> => {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((r) => socket.once('connect', () => r()));
    let isClosed = false;
    socket.once('close', () => (isClosed = true));
    const ask = () =>
      new Promise<string>((resolve) => {
        socket.once('data', (d) => resolve(d.toString()));
        socket.write('?\n');
      });
    return { socket, ask, closed: () => isClosed };
  };

  /** Both nodes ready again, and seen so by two probe rounds (an earlier test may have taken one out). */
  const bothReady = async () => {
    ready.set('a', true);
    ready.set('b', true);
    const probed = probes;
    await waitFor(() => probes >= probed + 4, 5000, 'two probe rounds with both nodes ready');
  };

  it('ends the connections of a node taken out; the client reconnects to a ready one', async () => {
    const first = await open();
    const second = await open();
    const [firstName, secondName] = [await first.ask(), await second.ask()];
    // Round-robin over the two ready nodes.
    expect([firstName, secondName].sort()).toEqual(['a', 'b']);
    const onA = firstName === 'a' ? first : second;

    ready.set('a', false);
    await waitFor(() => onA.closed(), 5000, 'the connection through the node taken out to end');
    const other = onA === first ? second : first;
    expect(other.closed()).toBe(false);
    for (let i = 0; i < 3; i++) {
      const again = await open();
      expect(await again.ask()).toBe('b');
      again.socket.destroy();
    }
    first.socket.destroy();
    second.socket.destroy();
  });

  it('keeps the connections of a node that fails one probe only (a blip): requests in flight are not reset', async () => {
    // With no other node ready, nothing would be ended anyway.
    await bothReady();
    const client = await open();
    const on = await client.ask();
    blipping = on;
    const before = probes;
    await waitFor(() => blipping === null && probes >= before + 6, 5000, 'the blip and two probe rounds after it');
    expect(client.closed()).toBe(false);
    expect(await client.ask()).toBe(on);
    client.socket.destroy();
  });

  it('keeps the connections when every node is taken out at once (a store restart): there is nowhere better to send them', async () => {
    await bothReady();
    const client = await open();
    const on = await client.ask();
    ready.set('a', false);
    ready.set('b', false);
    const before = probes;
    await waitFor(() => probes >= before + 6, 5000, 'three probe rounds with no node ready');
    expect(client.closed()).toBe(false);
    // The other node is ready again, the client's is not: the client is moved.
    ready.set(on === 'a' ? 'b' : 'a', true);
    await waitFor(() => client.closed(), 5000, 'the connection through the node still out to end once another is ready');
    ready.set('a', true);
    ready.set('b', true);
  });
});
