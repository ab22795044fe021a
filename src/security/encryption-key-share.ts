/**
 * The DIP's encryption key (security pattern 2), the same on every node of a cluster.
 *
 * Senders encrypt to the certificate GET /certificates/dip gives them, whichever node answers, and a
 * message encrypted at one node's certificate may be decrypted at any other. The key lives in files of
 * each node's PKI directory, and `dip pki rotate-encryption` replaced them on one node only: the others
 * kept handing out the old certificate and could not decrypt what was encrypted to the new one (and the
 * Kubernetes init container copied the Secret's older pair back at every start). On the cluster backend
 * the pair in force (with the previous one still decrypting, and until when) is recorded in the shared
 * store, sealed at rest with the data keys like the node secrets (node-secrets.ts). A node writes the
 * recorded pair into its files at start, before it reads them, and whenever a newer version is recorded
 * (the registry's change feed, and a poll); its EncryptionKeyWatcher then switches as after a rotation
 * on its own machine. A pair made or renewed at a node's start, and the one `dip pki rotate-encryption`
 * makes, is recorded for the others.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import { RecordConflictError, type RegistryStore, type StoredRecord } from '../ports/registry.js';
import type { Sealer } from './at-rest.js';
import { ENCRYPTION_CERT_FILE, writeEncryptionKeys, type EncryptionKeys } from './dip-encryption-key.js';

const KIND = 'dip-encryption-key';
const KEY = 'current';

interface KeysDoc {
  /** JSON of EncryptionKeys, sealed by the at-rest sealer (base64). */
  sealed: string;
}

type Store = Pick<RegistryStore, 'records' | 'putRecord'>;

const sealKeys = (sealer: Pick<Sealer, 'seal'>, keys: EncryptionKeys): KeysDoc => ({ sealed: sealer.seal(Buffer.from(JSON.stringify(keys)), 'encryptionKeys', KEY).toString('base64') });

const latest = async (store: Store): Promise<StoredRecord | undefined> => (await store.records(KIND)).find((r) => r.key === KEY);

/**
 * Records `keys` as the cluster's, replacing whatever is recorded (`dip pki rotate-encryption`: the
 * operator's rotation wins). The running nodes take it within their poll, or at once on the change feed.
 */
export async function recordEncryptionKeys(store: Store, sealer: Pick<Sealer, 'seal'>, keys: EncryptionKeys, by: string, at: number): Promise<number> {
  for (;;) {
    const version = (await latest(store))?.version ?? 0;
    try {
      return (await store.putRecord({ kind: KIND, key: KEY, doc: sealKeys(sealer, keys), at, by }, version)).version;
    } catch (err) {
      if (!(err instanceof RecordConflictError)) throw err;
    }
  }
}

export class SharedEncryptionKey {
  /** The recorded version this node's files hold (0: none yet). */
  private version = 0;

  constructor(
    private readonly store: Store,
    private readonly sealer: Pick<Sealer, 'seal' | 'open'>,
    private readonly pkiDir: string,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** Who records (the node's id, for the record's history). */
    private readonly by: string,
  ) {}

  /** At start, before the files are read: the recorded pair, if any, replaces the one in the files. */
  async adopt(): Promise<void> {
    const record = await latest(this.store);
    if (record) await this.take(record, 'start');
  }

  /**
   * After the start made or renewed the pair in the files (ensureEncryptionKey): recorded for the others
   * if it is not the recorded one. Another node recorded one meanwhile (two first starts, two renewals at
   * once): that one is taken instead (the file watcher switches to it).
   */
  async publish(keys: EncryptionKeys): Promise<void> {
    for (;;) {
      const record = await latest(this.store);
      if (record && this.open(record).current.certPem === keys.current.certPem) {
        this.version = record.version;
        return;
      }
      if (record && record.version !== this.version) {
        await this.take(record, 'start');
        return;
      }
      try {
        this.version = (await this.store.putRecord({ kind: KIND, key: KEY, doc: sealKeys(this.sealer, keys), at: this.clock.now(), by: this.by }, this.version)).version;
        this.logger.info({ version: this.version }, "DIP encryption key recorded in the store: the cluster's nodes take it");
        return;
      } catch (err) {
        if (!(err instanceof RecordConflictError)) throw err;
      }
    }
  }

  /** A newer version recorded (a rotation at another node): written into the files, which the key watcher reads. */
  async sync(): Promise<void> {
    const record = await latest(this.store);
    if (record && record.version > this.version) await this.take(record, 'rotation');
  }

  private async take(record: StoredRecord, when: 'start' | 'rotation'): Promise<void> {
    const keys = this.open(record);
    const certFile = join(this.pkiDir, ENCRYPTION_CERT_FILE);
    const own = existsSync(certFile) ? readFileSync(certFile, 'utf8') : null;
    if (own !== keys.current.certPem) {
      if (own !== null && when === 'start') {
        this.logger.warn(
          { file: certFile },
          "this node's DIP encryption key was not the cluster's (an older one, copied back at start, or rotated on this node alone): replaced with the one recorded in the store; senders are given the cluster's certificate",
        );
      } else if (when === 'rotation') this.logger.info({ version: record.version, by: record.by }, 'DIP encryption key rotated at another node (recorded in the store): taken by this node');
      await writeEncryptionKeys(this.pkiDir, keys);
    }
    this.version = record.version;
  }

  private open(record: StoredRecord): EncryptionKeys {
    return JSON.parse(this.sealer.open(Buffer.from((record.doc as KeysDoc).sealed, 'base64'), 'encryptionKeys', record.key).toString('utf8')) as EncryptionKeys;
  }
}
