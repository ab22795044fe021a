import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { adminTokenFile } from '../../api/admin.js';
import { TcpBalancer, type Backend } from './balancer.js';
import { natsCluster, natsHealthy, type NatsNode } from './nats.js';
import { ensureDatabase, postgresReachable, PrivatePostgres } from './postgres.js';
import { freePorts, listening, ManagedProcess } from './processes.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, '..', '..', '..');
/** `dip serve` as this code runs: the TypeScript sources through tsx, or the build (dist/) on plain node. */
const SERVE = import.meta.url.endsWith('.ts') ? ['--import', 'tsx', join(HERE, '..', 'main.ts'), 'serve'] : [join(HERE, '..', 'main.js'), 'serve'];

export interface TopologyOptions {
  /** Where the topology keeps its state: NATS stores, the DIP data directory, logs. */
  dir: string;
  /** The one address participants use (0: any free port). */
  host: string;
  port: number;
  /** The cluster's database; created when absent. A private instance is started when no server answers. */
  postgresUrl: string;
  /** Use this NATS cluster instead of starting one (servers as host:port). */
  natsServers?: string[];
  /** First client port of the NATS nodes it starts (routes at +100, monitoring at +200); free ports when absent. */
  natsBasePort?: number;
  natsNodes: number;
  natsBinary: string;
  dipNodes: number;
  /** Merged into every node's dip.config.yaml (environment, channels, intervals…). */
  dipConfig?: Record<string, unknown>;
  /**
   * The database URL of each DIP node, by index, where it differs from `postgresUrl` (DIP_POSTGRES_URL of
   * that process): the failover tests put a proxy they can pause between one node and PostgreSQL.
   */
  nodePostgresUrls?: Array<string | undefined>;
  /** Extra environment of each DIP node, by index (the fault tests start one node with a skewed clock). */
  nodeEnv?: Array<Record<string, string> | undefined>;
  log(message: string): void;
}

export interface DipNode {
  name: string;
  port: number;
  adminPort: number;
  process: ManagedProcess;
  /** Starts the node again (after a kill), and waits until it listens. */
  start(): Promise<void>;
}

export interface Topology {
  url: string;
  port: number;
  dataDir: string;
  postgresUrl: string;
  natsServers: string[];
  /** The NATS nodes this topology started (empty when it used running ones). */
  nats: NatsNode[];
  dipNodes: DipNode[];
  balancer: TcpBalancer;
  /** The PostgreSQL instance it started, when none was running. */
  postgres: PrivatePostgres | null;
  /** Stops what it started, in reverse order. */
  stop(): Promise<void>;
}

/**
 * A complete production topology on one machine (`dip cluster`): a 3-node NATS JetStream cluster (R3),
 * PostgreSQL, several stateless DIP nodes (`dip serve` with storage.kind cluster) sharing one data
 * directory (PKI and key-encryption key), behind one TCP address. Each server is started only when it
 * is not already running, and only what was started is stopped.
 */
export async function startTopology(o: TopologyOptions): Promise<Topology> {
  mkdirSync(o.dir, { recursive: true });
  const stops: Array<() => Promise<void> | void> = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        o.log(`could not stop cleanly: ${(err as Error).message}`);
      }
    }
  };
  try {
    // PostgreSQL: the running server, or an instance of our own on the URL's port.
    const serverUrl = new URL(o.postgresUrl);
    serverUrl.pathname = '/postgres';
    let postgres: PrivatePostgres | null = null;
    if (!(await postgresReachable(serverUrl.toString()))) {
      if (!['127.0.0.1', 'localhost'].includes(serverUrl.hostname)) throw new Error(`PostgreSQL at ${serverUrl.host} does not answer`);
      postgres = new PrivatePostgres(join(o.dir, 'postgres'), Number(serverUrl.port || 5432));
      o.log(`PostgreSQL is not running on ${serverUrl.host}: starting an instance in ${postgres.dir}`);
      postgres.init();
      postgres.start();
      const started = postgres;
      stops.push(() => started.stop('fast'));
    }
    if (await ensureDatabase(o.postgresUrl)) o.log(`created database ${new URL(o.postgresUrl).pathname.slice(1)}`);

    // NATS: the given servers, the ones already on our ports, or a JetStream cluster we start.
    let nats: NatsNode[] = [];
    let natsServers = o.natsServers ?? [];
    if (natsServers.length === 0) {
      const base = o.natsBasePort;
      const ports = base
        ? Array.from({ length: o.natsNodes }, (_, i) => ({ client: base + i, route: base + 100 + i, monitor: base + 200 + i }))
        : await freePorts(3 * o.natsNodes).then((p) => Array.from({ length: o.natsNodes }, (_, i) => ({ client: p[3 * i]!, route: p[3 * i + 1]!, monitor: p[3 * i + 2]! })));
      natsServers = ports.map((p) => `127.0.0.1:${p.client}`);
      const running = await Promise.all(ports.map((p) => listening('127.0.0.1', p.client)));
      if (running.every(Boolean)) o.log(`NATS is already running on ${natsServers.join(', ')}: using it`);
      else if (running.some(Boolean)) throw new Error(`some of the NATS ports ${natsServers.join(', ')} are taken: choose another --nats-port`);
      else {
        nats = natsCluster({ dir: join(o.dir, 'nats'), binary: o.natsBinary, ports });
        await Promise.all(nats.map((n) => n.process.start({ line: /Server is ready/, timeoutMs: 30_000 })));
        for (const n of nats) stops.push(() => n.process.stop());
        // JetStream is usable once the cluster has elected its meta leader.
        await Promise.all(nats.map((n) => pollUntil(() => natsHealthy(n.monitorPort), 30_000, `${n.name} JetStream`)));
        o.log(`NATS JetStream cluster of ${nats.length} started on ${natsServers.join(', ')}`);
      }
    }

    // The DIP nodes: one data directory (PKI, key-encryption key, configuration) for all of them.
    const dataDir = join(o.dir, 'dip');
    mkdirSync(dataDir, { recursive: true });
    const config = {
      host: '127.0.0.1',
      ...o.dipConfig,
      storage: {
        kind: 'cluster',
        postgres: { url: o.postgresUrl, poolSize: 10 },
        // R3 wherever there are three servers to replicate to.
        nats: { servers: natsServers, replicas: natsServers.length >= 3 ? 3 : 1, prefix: 'dip' },
      },
    };
    writeFileSync(join(dataDir, 'dip.config.yaml'), stringify(config));
    const ports = await freePorts(2 * o.dipNodes);
    const dipNodes: DipNode[] = Array.from({ length: o.dipNodes }, (_, i) => {
      const name = `dip-${i + 1}`;
      const port = ports[2 * i]!;
      const adminPort = ports[2 * i + 1]!;
      const postgresUrl = o.nodePostgresUrls?.[i];
      const process_ = new ManagedProcess(name, process.execPath, SERVE, {
        cwd: REPO_ROOT,
        env: { ...process.env, DIP_NODE_NAME: name, DIP_DATA_DIR: dataDir, DIP_PORT: String(port), DIP_ADMIN_PORT: String(adminPort), DIP_PORTAL_PORT: '0', DIP_CONFIG: join(dataDir, 'dip.config.yaml'), ...(postgresUrl ? { DIP_POSTGRES_URL: postgresUrl } : {}), ...o.nodeEnv?.[i] },
        logFile: join(o.dir, `${name}.log`),
      });
      return { name, port, adminPort, process: process_, start: () => process_.start({ line: /"OpenDIP listening"/, timeoutMs: 120_000 }) };
    });
    // The first node makes the PKI and key-encryption key; the others start once they exist.
    await dipNodes[0]!.start();
    stops.push(() => dipNodes[0]!.process.stop());
    await Promise.all(
      dipNodes.slice(1).map(async (n) => {
        await n.start();
        stops.push(() => n.process.stop());
      }),
    );

    const token = () => (existsSync(adminTokenFile(dataDir)) ? readFileSync(adminTokenFile(dataDir), 'utf8').trim() : '');
    const backends: Backend[] = dipNodes.map((n) => ({ name: n.name, host: '127.0.0.1', port: n.port, healthy: null }));
    const balancer = new TcpBalancer(backends, {
      host: o.host,
      port: o.port,
      probeEveryMs: 1_000,
      connectTimeoutMs: 2_000,
      log: (m) => o.log(m),
      async probe(b) {
        const node = dipNodes.find((n) => n.name === b.name)!;
        const res = await fetch(`http://127.0.0.1:${node.adminPort}/admin/health`, { headers: { authorization: `Bearer ${token()}` }, signal: AbortSignal.timeout(2_000) });
        return res.ok;
      },
    });
    const port = await balancer.start();
    stops.push(() => balancer.stop());
    const host = o.host === '0.0.0.0' ? '127.0.0.1' : o.host;
    return { url: `https://${host === '127.0.0.1' ? 'localhost' : host}:${port}`, port, dataDir, postgresUrl: o.postgresUrl, natsServers, nats, dipNodes, balancer, postgres, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Polls a condition until it holds or the deadline passes. */
async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
