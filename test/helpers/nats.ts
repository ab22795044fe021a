import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

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
