import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP path (to PostgreSQL) that can go silent, as a network partition that drops packets: `silence()`
 * forwards nothing either way and closes nothing, so neither end hears of the other; `resume()` heals it.
 *
 * What was sent meanwhile is held, not thrown away, and goes through on `resume()` in order, closes
 * last: across a real partition TCP retransmits what was not acknowledged, so a statement sent during it
 * reaches the server after the heal, and a session the server ended meanwhile (its idle-in-transaction
 * timeout) reaches the client as that session's error and end. (Unlike TCP, whose retransmissions back
 * off, everything goes through at once.) A connection opened while silent reaches the server only on
 * `resume()`, and not at all if its client gave up before.
 */
export interface PausableProxy {
  /** The proxy's URL: the target's with this address. */
  url: string;
  silence(): void;
  resume(): void;
  /**
   * The server gone (stopped, or its host down and refusing): every connection through the proxy is
   * reset, and each new one is reset as soon as it is opened, until `restore()`.
   */
  refuse(): void;
  restore(): void;
  /**
   * The address behind the proxy moves (a failover: the service address now names another server):
   * every open connection is reset, as the old server's sessions are gone, and new ones go to `target`.
   */
  pointAt(target: URL): void;
  /**
   * The next client chunk that `match` picks (a COMMIT, say) reaches the server, and then that one
   * connection goes silent both ways for good, as a path that breaks just after a request went out: its
   * answer never comes back. Other connections, and new ones, are untouched.
   */
  cutAfter(match: (chunk: Buffer) => boolean): void;
  /** Connections opened through it so far. */
  readonly connections: number;
  /** The local ports of its open connections to the target (pg_stat_activity's client_port). */
  upstreamPorts(): number[];
  close(): Promise<void>;
}

interface Side {
  socket: Socket | null;
  /** Chunks received from this side while silent, for the other. */
  held: Buffer[];
  /** This side ended or failed while silent (applied to the other on resume). */
  ended: boolean;
  /** This connection was cut (cutAfter): nothing more goes through, either way. */
  cut?: boolean;
}

export async function pausableProxy(initial: URL): Promise<PausableProxy> {
  let target = initial;
  let silent = false;
  let refusing = false;
  let connections = 0;
  let cutAfter: ((chunk: Buffer) => boolean) | null = null;
  const pairs = new Set<{ client: Side; upstream: Side }>();

  /** Forwards from one side to the other (or holds), and passes its end on. */
  const wire = (pair: { client: Side; upstream: Side }, from: Side, to: Side) => {
    const s = from.socket!;
    s.on('data', (d: Buffer) => {
      if (pair.client.cut) return;
      if (silent || !to.socket) from.held.push(d);
      else to.socket.write(d);
      if (from === pair.client && cutAfter?.(d)) {
        cutAfter = null;
        pair.client.cut = true;
      }
    });
    const end = (err?: Error) => {
      if (from.ended || pair.client.cut) return;
      from.ended = true;
      // A reset (PostgreSQL down: refused, or gone) is passed on as one; an orderly end as an end.
      if (!silent && to.socket) {
        if (err) to.socket.resetAndDestroy();
        else to.socket.end();
      }
      if (pair.client.ended && pair.upstream.ended) pairs.delete(pair);
    };
    s.on('end', () => end()).on('close', () => end()).on('error', (err) => end(err));
  };

  const openUpstream = (pair: { client: Side; upstream: Side }) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    pair.upstream.socket = upstream;
    wire(pair, pair.upstream, pair.client);
    // What the client sent before the upstream existed (its startup message).
    for (const d of pair.client.held.splice(0)) upstream.write(d);
    if (pair.client.ended) upstream.end();
  };

  const resetAll = () => {
    for (const { client, upstream } of pairs) {
      client.socket?.resetAndDestroy();
      upstream.socket?.resetAndDestroy();
    }
    pairs.clear();
  };

  const server: Server = createServer((client) => {
    connections += 1;
    if (refusing) {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    const pair = { client: { socket: client, held: [], ended: false } as Side, upstream: { socket: null, held: [], ended: false } as Side };
    pairs.add(pair);
    wire(pair, pair.client, pair.upstream);
    if (!silent) openUpstream(pair);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = new URL(initial);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as { port: number }).port);

  return {
    url: url.toString(),
    get connections() {
      return connections;
    },
    upstreamPorts: () => [...pairs].flatMap((p) => (p.upstream.socket?.localPort && !p.upstream.ended ? [p.upstream.socket.localPort] : [])),
    silence() {
      silent = true;
    },
    resume() {
      silent = false;
      for (const pair of [...pairs]) {
        const { client, upstream } = pair;
        if (!upstream.socket) {
          // Opened while silent: it reaches the server now, unless its client gave up meanwhile.
          if (client.ended) pairs.delete(pair);
          else openUpstream(pair);
          continue;
        }
        for (const d of upstream.held.splice(0)) client.socket!.write(d);
        if (upstream.ended) client.socket!.end();
        if (!upstream.ended) for (const d of client.held.splice(0)) upstream.socket.write(d);
        if (client.ended) upstream.socket.end();
        if (client.ended || upstream.ended) pairs.delete(pair);
      }
    },
    refuse() {
      refusing = true;
      resetAll();
    },
    restore() {
      refusing = false;
    },
    pointAt(next) {
      target = next;
      resetAll();
    },
    cutAfter(match) {
      cutAfter = match;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const { client, upstream } of pairs) {
          client.socket?.destroy();
          upstream.socket?.destroy();
        }
        server.close(() => r());
      }),
  };
}
