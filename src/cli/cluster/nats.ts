import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess } from './processes.js';

export interface NatsNode {
  name: string;
  clientPort: number;
  routePort: number;
  monitorPort: number;
  process: ManagedProcess;
}

export interface NatsClusterOptions {
  dir: string;
  /** nats-server binary. */
  binary: string;
  /** Client, route and monitoring ports per node. */
  ports: Array<{ client: number; route: number; monitor: number }>;
}

/**
 * A JetStream cluster of nats-server processes on one machine, each with its own ports and store
 * directory, routed to each other: replicated (R3) streams and KV buckets survive the loss of any one.
 */
export function natsCluster(o: NatsClusterOptions): NatsNode[] {
  return o.ports.map((p, i) => {
    const name = `nats-${i + 1}`;
    const dir = join(o.dir, name);
    mkdirSync(join(dir, 'jetstream'), { recursive: true });
    const routes = o.ports.filter((_, j) => j !== i).map((q) => `nats-route://127.0.0.1:${q.route}`);
    // A lone server runs JetStream unclustered: nats-server refuses a JetStream cluster without routes.
    const cluster = routes.length === 0 ? '' : `cluster {
  name: dip-local
  listen: 127.0.0.1:${p.route}
  routes: [${routes.join(', ')}]
}
`;
    // nats-server 2.9's file store writes without an fsync per message: what a JetStream stream holds is
    // kept by replication to a quorum (R3), not by each node's disk (see docs/cluster.md).
    const conf = `server_name: ${name}
listen: 127.0.0.1:${p.client}
http: 127.0.0.1:${p.monitor}
jetstream {
  store_dir: "${join(dir, 'jetstream')}"
  max_memory_store: 256MB
  max_file_store: 2GB
}
${cluster}`;
    const confFile = join(dir, 'nats.conf');
    writeFileSync(confFile, conf);
    return { name, clientPort: p.client, routePort: p.route, monitorPort: p.monitor, process: new ManagedProcess(name, o.binary, ['-c', confFile], { logFile: join(dir, 'nats.log') }) };
  });
}

/** Ready when the server's health endpoint says JetStream is up (it answers 503 until the cluster has a meta leader). */
export async function natsHealthy(monitorPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz`);
    return res.ok;
  } catch {
    return false;
  }
}
