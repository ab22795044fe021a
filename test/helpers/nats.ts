import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePorts, ManagedProcess } from '../../src/cli/cluster/processes.js';

/** The NATS server tests use: the service on these machines (.ci/run starts it), or DIP_TEST_NATS_SERVERS. */
export const NATS_SERVERS = (process.env.DIP_TEST_NATS_SERVERS ?? '127.0.0.1:4222').split(',');

/** A prefix no other test uses, so buckets and subjects of parallel tests never meet. */
export const testPrefix = (): string => `t${randomBytes(5).toString('hex')}`;

/** Deletes the KV buckets (streams KV_<prefix>_*) a test made. */
export async function deleteBuckets(prefix: string): Promise<void> {
  const nc = await connect({ servers: NATS_SERVERS });
  try {
    const jsm = await jetstreamManager(nc);
    for await (const name of jsm.streams.names()) if (name.startsWith(`KV_${prefix}_`)) await jsm.streams.delete(name);
  } finally {
    await nc.close();
  }
}

/**
 * A NATS server (JetStream) of a test's own, its store and log in `dir`, on a free port: for tests that
 * stop, kill or restart it (the shared service is never touched). `start()` starts it again after a stop.
 */
export async function privateNatsServer(dir: string): Promise<{ process: ManagedProcess; server: string; start: () => Promise<void> }> {
  const [port] = await freePorts(1);
  const nats = new ManagedProcess('nats', process.env.NATS_SERVER ?? 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'js')], { logFile: join(dir, 'nats.log') });
  const start = () => nats.start({ line: /Server is ready/, timeoutMs: 30_000 });
  await start();
  return { process: nats, server: `127.0.0.1:${port}`, start };
}
