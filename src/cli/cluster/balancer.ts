import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Backend {
  name: string;
  host: string;
  port: number;
  /** Whether the node is fit to take traffic (its readiness probe); null until first checked. */
  healthy: boolean | null;
}

/**
 * Failed probes in a row after which a node's connections are ended. One failed probe is a blip (an
 * operator's pg_terminate_backend turns a node unready until its next write, about a second): ending
 * its connections then reset requests in flight whose batches were stored, and their senders learned
 * of them only as duplicates (MSG1006) on the resend (cluster campaign, pgkill: the 6 such "201 lost" of
 * 11 rounds logged batch by batch each followed a reset). A node paused or cut off fails the next probe
 * too, and loses them one probe later.
 */
export const SHUTDOWN_AFTER_FAILED_PROBES = 2;

export interface BalancerOptions {
  host: string;
  port: number;
  /** Asks a backend whether it is ready (resolve true/false; a throw counts as false). */
  probe(backend: Backend): Promise<boolean>;
  probeEveryMs: number;
  /** How long a connection attempt to a backend may take before the next one is tried. */
  connectTimeoutMs: number;
  log(message: string): void;
}

/**
 * One address for several DIP nodes: a TCP pass-through (layer 4) balancer, so the participants' mutual
 * TLS ends at the nodes, which see the client certificate themselves. New connections go round-robin to
 * nodes whose readiness probe passes; a node that fails it (stopped, storage unavailable) is taken out
 * until it passes again. A connection refused by a node that died since the last probe is tried on the
 * next one, so a kill -9 costs no client a refused connection. When no node is ready, connections still go
 * to a node that listens, which answers 503 with Retry-After: every request gets an answer.
 *
 * For trials and tests on one machine (`dip cluster`); production puts a cloud or hardware load balancer
 * in TCP mode (or HAProxy `mode tcp`) in this place.
 */
export class TcpBalancer {
  private server: Server | null = null;
  private next = 0;
  private probing: NodeJS.Timeout | null = null;
  private readonly sockets = new Set<Socket>();
  /** The clients each backend carries now: ended when it is taken out, so they reconnect to a ready node. */
  private readonly carried = new Map<Backend, Set<Socket>>();
  /** Probes each backend has failed in a row. */
  private readonly failedInARow = new Map<Backend, number>();

  constructor(
    readonly backends: Backend[],
    private readonly options: BalancerOptions,
  ) {}

  async start(): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    await this.probeAll();
    this.probing = setInterval(() => void this.probeAll(), this.options.probeEveryMs);
    this.probing.unref();
    const address = server.address();
    return typeof address === 'object' && address ? address.port : this.options.port;
  }

  async stop(): Promise<void> {
    if (this.probing) clearInterval(this.probing);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async probeAll(): Promise<void> {
    const results = await Promise.all(this.backends.map((b) => this.options.probe(b).catch(() => false)));
    // With no node ready (a store restart every node waits on), ending connections moves nobody anywhere
    // better and only resets the requests in flight, whose senders then never learn their answers.
    const anyReady = results.some((ok) => ok);
    this.backends.forEach((b, i) => {
      const ok = results[i]!;
      if (ok !== b.healthy && b.healthy !== null) this.options.log(`${b.name} ${ok ? 'is ready: back in' : 'is not ready: taken out'}`);
      const failed = ok ? 0 : (this.failedInARow.get(b) ?? 0) + 1;
      this.failedInARow.set(b, failed);
      // Kept-alive clients of a node taken out (paused, its storage gone) would wait on it for as long
      // as it stays so: their connections end, and their next request goes to a ready node (a request
      // in flight is answered by a reset, and sent again: de-duplication keeps it once). HAProxy's
      // `on-marked-down shutdown-sessions` does the same. Not at the first failed probe (new connections
      // go elsewhere at once): see SHUTDOWN_AFTER_FAILED_PROBES. Done in every round a node is ready, so
      // clients kept on a node while no node was ready move once one is.
      if (!ok && anyReady && failed >= SHUTDOWN_AFTER_FAILED_PROBES) for (const s of this.carried.get(b) ?? []) s.destroy();
      b.healthy = ok;
    });
  }

  /** Ready backends first (round-robin), then the rest: a node that listens answers even when it cannot serve. */
  private order(): Backend[] {
    const start = this.next++ % Math.max(1, this.backends.length);
    const rotated = [...this.backends.slice(start), ...this.backends.slice(0, start)];
    return [...rotated.filter((b) => b.healthy), ...rotated.filter((b) => !b.healthy)];
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const candidates = this.order();
    const attempt = (i: number): void => {
      const b = candidates[i];
      if (!b) {
        client.destroy();
        return;
      }
      const upstream = connect({ host: b.host, port: b.port });
      const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.options.connectTimeoutMs);
      upstream.once('connect', () => {
        clearTimeout(timer);
        this.sockets.add(upstream);
        upstream.once('close', () => this.sockets.delete(upstream));
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        const carried = this.carried.get(b) ?? new Set<Socket>();
        this.carried.set(b, carried);
        carried.add(client);
        client.once('close', () => carried.delete(client));
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.once('error', () => {
        clearTimeout(timer);
        // Nothing was sent yet: the next node gets the connection, and this one waits for its next probe.
        if (b.healthy) {
          b.healthy = false;
          this.options.log(`${b.name} refused a connection: taken out`);
        }
        attempt(i + 1);
      });
    };
    attempt(0);
  }
}
