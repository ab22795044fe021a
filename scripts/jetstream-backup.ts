/**
 * Backup and restore of the DIP's JetStream streams and KV buckets through the JetStream API (no `nats`
 * CLI needed): each stream's configuration and every message it holds (subject, headers, data) go to one
 * JSON-lines file per stream; a restore creates the stream again and republishes them in order.
 *
 *   npx tsx scripts/jetstream-backup.ts backup  --servers 127.0.0.1:4222 --prefix dip --out ./js-backup
 *   npx tsx scripts/jetstream-backup.ts restore --servers 127.0.0.1:4222 --in ./js-backup
 *
 * What the DIP keeps in JetStream is coordination state with a short life (queue leases, signatures seen
 * in the last 2 × clock skew, fair-use buckets): a cluster restored without it is correct (leases are
 * claimed again, PostgreSQL refuses replayed submissions by their sender references). The backup matters
 * for streams that hold data of their own, such as large publications in an object store. See
 * docs/disaster-recovery.md.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type StreamConfig } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const log = (m: string) => process.stderr.write(`[jetstream-backup] ${m}\n`);

interface Saved {
  subject: string;
  headers: Array<[string, string[]]>;
  data: string;
}

async function backup(): Promise<void> {
  const out = arg('out') ?? './jetstream-backup';
  const prefix = arg('prefix') ?? 'dip';
  mkdirSync(out, { recursive: true });
  const nc = await connect({ servers: (arg('servers') ?? '127.0.0.1:4222').split(',') });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    for await (const info of jsm.streams.list()) {
      const name = info.config.name;
      // The DIP's buckets are KV_<prefix>_*, object stores OBJ_<prefix>_*, streams <prefix>_*.
      if (![`KV_${prefix}_`, `OBJ_${prefix}_`, `${prefix}_`].some((p) => name.startsWith(p))) continue;
      const lines: string[] = [JSON.stringify(info.config)];
      const total = info.state.messages;
      if (total > 0) {
        const consumer = await js.consumers.get(name);
        const messages = await consumer.consume();
        let n = 0;
        for await (const m of messages) {
          const hdrs: Array<[string, string[]]> = m.headers ? [...m.headers.keys()].map((k) => [k, m.headers!.values(k)]) : [];
          lines.push(JSON.stringify({ subject: m.subject, headers: hdrs, data: Buffer.from(m.data).toString('base64') } satisfies Saved));
          if (++n >= total || m.info.pending === 0) break;
        }
        await messages.close();
      }
      writeFileSync(join(out, `${name}.jsonl`), `${lines.join('\n')}\n`);
      log(`${name}: ${lines.length - 1} messages`);
    }
  } finally {
    await nc.close();
  }
}

async function restore(): Promise<void> {
  const dir = arg('in') ?? './jetstream-backup';
  const nc = await connect({ servers: (arg('servers') ?? '127.0.0.1:4222').split(',') });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.jsonl'))) {
      const [first, ...rest] = readFileSync(join(dir, file), 'utf8').split('\n').filter(Boolean);
      const config = JSON.parse(first!) as StreamConfig;
      const replicas = arg('replicas');
      await jsm.streams.add({ ...config, ...(replicas ? { num_replicas: Number(replicas) } : {}) });
      for (const line of rest) {
        const m = JSON.parse(line) as Saved;
        const h = natsHeaders();
        for (const [k, vs] of m.headers) for (const v of vs) h.append(k, v);
        await js.publish(m.subject, Buffer.from(m.data, 'base64'), m.headers.length ? { headers: h } : undefined);
      }
      log(`${config.name}: ${rest.length} messages restored`);
    }
  } finally {
    await nc.close();
  }
}

const command = process.argv[2];
if (command === 'backup') await backup();
else if (command === 'restore') await restore();
else {
  process.stderr.write('usage: jetstream-backup.ts backup|restore [--servers h:p,…] [--prefix dip] [--out dir | --in dir] [--replicas n]\n');
  process.exit(2);
}
