/**
 * The keys a node signs its own tokens with, the same on every node of a cluster.
 *
 * Operator and portal sessions, portal device cookies and replay continuation tokens are signed with
 * 256-bit keys kept in files of the data directory, made by the first process that needs one; the
 * operator API's bootstrap token is one such file too (an operator reads it from any node's directory). Each
 * cluster node has its own data directory (docs/deployment.md) and so made its own keys: a session
 * signed at node 1 was "ended" at node 2, a continuation token failed at the other node. On the cluster
 * backend the first node to start records each key in the shared store, sealed at rest with the data
 * keys (and so under the KEK every node shares); every node then writes the recorded key into its own
 * file before anything reads it. A node whose file held another key says so: its sessions made with
 * that key end (they were good at that node only).
 */
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from '../ports/logger.js';
import { RecordConflictError, type RegistryStore } from '../ports/registry.js';
import type { Sealer } from './at-rest.js';
import { writeAtomic } from './files.js';
import { keyFromFile } from './portal-session.js';

/** Every node-signed token's key, by file name in the data directory. */
export const NODE_SECRET_FILES = {
  operatorSession: 'operator-session.key',
  portalSession: 'portal-session.key',
  portalDevice: 'portal-device.key',
  replayToken: 'replay-token.key',
  /** The operator API's bootstrap token (src/api/admin.ts): read from any node's data directory, good at every node. */
  adminToken: 'admin-token',
} as const;

export const nodeSecretFile = (dataDir: string, name: keyof typeof NODE_SECRET_FILES): string => join(dataDir, NODE_SECRET_FILES[name]);

const SECRET_RECORD = 'cluster-secret';

interface SecretDoc {
  /** The key, sealed by the at-rest sealer (base64). */
  sealed: string;
}

/**
 * Makes this node's key files the cluster's: the recorded key where there is one, else this node's
 * (made now if it has none) recorded for the others. Run before anything reads the files.
 */
export async function shareNodeSecrets(store: Pick<RegistryStore, 'records' | 'putRecord'>, sealer: Pick<Sealer, 'seal' | 'open'>, dataDir: string, logger: Logger, at: number): Promise<void> {
  for (const fileName of Object.values(NODE_SECRET_FILES)) {
    const file = join(dataDir, fileName);
    for (;;) {
      const found = (await store.records(SECRET_RECORD)).find((r) => r.key === fileName);
      if (found) {
        const shared = sealer.open(Buffer.from((found.doc as SecretDoc).sealed, 'base64'), 'nodeSecret', fileName);
        const own = existsSync(file) ? Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url') : null;
        if (own?.equals(shared)) break;
        if (own) logger.warn({ file }, `${fileName} held a key of this node's own: replaced with the cluster's (recorded by the first node to start); what this node signed with it (sessions, cookies, continuation tokens), or the bootstrap token it held, is no longer good`);
        await writeAtomic(file, shared.toString('base64url'), 0o600);
        break;
      }
      try {
        await store.putRecord({ kind: SECRET_RECORD, key: fileName, doc: { sealed: sealer.seal(keyFromFile(file), 'nodeSecret', fileName).toString('base64') } satisfies SecretDoc, at, by: 'node' }, 0);
        break;
      } catch (err) {
        // Another node recorded its key first: take that one.
        if (!(err instanceof RecordConflictError)) throw err;
      }
    }
  }
}
