import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { compressSync, uncompressSync } from 'lz4-napi';
import type { SealedKind, SealOptions, ValueSealer } from '../ports/backend.js';
import type { DataKeyStore } from '../ports/data-keys.js';
import type { Clock } from '../ports/clock.js';
import { DataKeyNotLoaded, NoSuchDataKey, SealedForAnotherRecord } from '../ports/errors.js';
import type { Logger } from '../ports/logger.js';
import { FORMAT_3_DICTIONARY } from './lz4-dictionary.js';

/**
 * Encryption at rest with envelope keys. Archived payloads are sealed with AES-256-GCM under a *data key*;
 * data keys are stored only wrapped by a *key-encryption key* (KEK): a key file by default, or an
 * external KMS through the KeyEncryptionKey interface. Rotation adds a data key and makes it current;
 * older ones stay for reading what they sealed.
 */
export interface KeyEncryptionKey {
  wrap(dataKey: Buffer): Promise<Buffer>;
  unwrap(wrapped: Buffer): Promise<Buffer>;
}


const GCM_IV = 12;
const GCM_TAG = 16;
const VERSION = 1;
/**
 * The same layout, the plaintext compressed with LZ4 before sealing (lz4-napi's block format: the
 * plaintext's length as 4 bytes little-endian, then one LZ4 block). An outbound copy of an IF-021
 * (4.5 kB of JSON) is stored in about 1.3 kB for ~7 us of CPU and opened for ~4; deflate at level 1 made
 * it 0.9 kB but cost ~30 and ~10 us, which the ingest benchmark showed as 13 % of the throughput on two
 * cores (BENCHMARKS.md). The smaller plaintext also makes the AES-GCM and the SQLite write cheaper.
 * The format byte is authenticated with the rest of the header, so it cannot be flipped. Compressing
 * before encrypting leaks only the length of one message's own compressed text, to someone who can read
 * the database's files; no value an attacker chooses shares a compression window with a secret.
 */
const COMPRESSED = 2;
/**
 * Format 2 with a dictionary (FORMAT_3_DICTIONARY: the catalogue's example IF-021, frozen): LZ4 may refer
 * back into it, so the keys of the DIP's wrapper and of an IF-021 that a single message uses once each are
 * not stored as literals. An IF-021's outbound copy (4.5 kB) is sealed in 874 bytes instead of 1,413, for
 * about the same instructions (+2.4 % to seal, −1.9 % to open: BENCHMARKS.md, "Issue 9: a dictionary for the
 * outbound copy").
 *
 * Read always, written only when storage.atRest.lz4Dictionary says so (SealerOptions.lz4Dictionary): no
 * build before this one opens it, so during a rolling upgrade (docs/cluster.md) a node not yet upgraded, or
 * a rollback, would fail on every value written in it. Once every node reads it the default can turn.
 */
const COMPRESSED_WITH_DICTIONARY = 3;
/**
 * Formats 4, 5 and 6: formats 1, 2 and 3 bound to their record (BOUND + the unbound format). The
 * authenticated data is the header, then one byte for the kind of value (KIND_CODE) and the record's key
 * in UTF-8 (an outbound copy: its message's transaction ID; ValueSealer.seal's `kind` and `record`). The
 * kind and key are not stored: the reader passes the record it reads, so a value copied or swapped into
 * another record (someone who can write the database, or an export edited by hand) fails to authenticate
 * there, and the reader is told which record (SealedForAnotherRecord) instead of serving another message's
 * body under this one's transaction ID. The key is what the record is called on every engine (never a row
 * id), so an export carries bound values to another engine as they are.
 *
 * Read always, written only when storage.atRest.bindToRecord says so (SealerOptions.bindToRecord, on by
 * default): no build before this one opens them, so an operator upgrading a cluster turns it off until every
 * node runs this version (docs/cluster.md). Values sealed before stay in formats 1-3 and open as before; only
 * values sealed since are bound.
 */
const BOUND = 3;

/** The kind of value, as its byte in a bound value's authenticated data (fixed: changing one unbinds every stored value). */
const KIND_CODE: Record<SealedKind, number> = { outbound: 1, rawRequest: 2, totpSecret: 3, encryptionKeys: 4, nodeSecret: 5 };
const KIND_WORDS: Record<SealedKind, string> = {
  outbound: 'outbound copy of message',
  rawRequest: 'raw request of batch',
  totpSecret: 'TOTP secret of portal account',
  encryptionKeys: 'shared encryption keys',
  nodeSecret: 'node secret',
};

/** The largest record key a bound value's authenticated data is built for without growing its buffer. */
const AAD_START = 1024;

export interface SealerOptions {
  /** Seal compressed values in format 3 (the dictionary) instead of format 2; both always open. */
  lz4Dictionary?: boolean;
  /** Seal in the formats bound to their record (4-6) instead of 1-3; all always open. */
  bindToRecord?: boolean;
  /** Times the reloads a value under a key not held sets off (RELOAD_ON_MISS_MS apart at least). */
  clock?: Pick<Clock, 'now'>;
  /** Told of keys loaded after start, and of a reload that failed. */
  logger?: Logger;
}

/**
 * At most this often, a value sealed under a data key this sealer does not hold makes it read the stored
 * keys again. Such a value is nearly always one sealed under a key rotated by another process or node since
 * this one read them, and the first one met starts a reload at once; the limit only keeps a damaged header
 * naming a key nobody holds, read again and again, from becoming a read of the keys per attempt.
 */
export const RELOAD_ON_MISS_MS = 5_000;

/** Whether a stored value has the shape of Sealer.index's output (base64url of an HMAC-SHA-256): not a clear MPAN. */
export function isIndexValue(value: string): boolean {
  return /^[\w-]{43}$/.test(value);
}

/**
 * Whether a sealer indexes by keyed hash: a store without encryption at rest keeps values as they are, and
 * must then never have its clear MPANs "rewritten" (into themselves, the rows deleted).
 */
export function indexesByHash(sealer: Pick<ValueSealer, 'index'>): boolean {
  return isIndexValue(sealer.index('0000000000000'));
}

/**
 * Whether a stored raw request was deflated by the writer before sealing: format 1, written before
 * 2026-12-01 (since, the sealer compresses it itself; a bound one never was).
 */
export function deflatedBeforeSealing(value: Buffer): boolean {
  return value.length >= 5 + GCM_IV + GCM_TAG && value[0] === VERSION;
}

// IVs are drawn from the CSPRNG in blocks (one system call per 1,024 values, on the hot path); every
// IV is still random and used once, since a block is never refilled in place.
let ivPool = Buffer.alloc(0);
let ivOffset = 0;
function nextIv(): Buffer {
  if (ivOffset + GCM_IV > ivPool.length) {
    ivPool = randomBytes(GCM_IV * 1024);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + GCM_IV);
  ivOffset += GCM_IV;
  return iv;
}

function gcmSeal(key: Buffer, plain: Buffer | string, aad: Buffer): Buffer {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const body = typeof plain === 'string' ? cipher.update(plain, 'utf8') : cipher.update(plain);
  const last = cipher.final();
  return Buffer.concat([iv, cipher.getAuthTag(), body, last]);
}

/**
 * The authenticated data of a bound value: its header, the kind's byte, the record's key. Written into one
 * buffer kept for the process (setAAD consumes it before returning, and nothing here awaits), so sealing
 * an outbound copy allocates no string and no buffer for it on the hot path.
 */
let aadScratch = Buffer.alloc(6 + AAD_START);
function boundAad(header: Buffer, kind: SealedKind, record: string): Buffer {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (6 + record.length * 3 > aadScratch.length) aadScratch = Buffer.alloc(6 + record.length * 3);
  header.copy(aadScratch, 0, 0, 5);
  aadScratch[5] = KIND_CODE[kind];
  const length = aadScratch.write(record, 6, 'utf8');
  return aadScratch.subarray(0, 6 + length);
}

function gcmOpen(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, GCM_IV));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(GCM_IV, GCM_IV + GCM_TAG));
  return Buffer.concat([decipher.update(sealed.subarray(GCM_IV + GCM_TAG)), decipher.final()]);
}

/** The default KEK: 32 random bytes in a file readable by the DIP's account only. */
export class FileKeyEncryptionKey implements KeyEncryptionKey {
  private readonly kek: Buffer;

  constructor(file: string) {
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600 });
    }
    this.kek = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (this.kek.length !== 32) throw new Error(`${file} does not hold a 256-bit key`);
  }

  async wrap(dataKey: Buffer): Promise<Buffer> {
    return gcmSeal(this.kek, dataKey, Buffer.from('opendip-data-key'));
  }

  async unwrap(wrapped: Buffer): Promise<Buffer> {
    return gcmOpen(this.kek, wrapped, Buffer.from('opendip-data-key'));
  }
}

/**
 * Seals and opens archived values. Sealed layout: version (1 byte), data key id (4 bytes), IV, tag,
 * ciphertext. The key id is authenticated too, so a value cannot be passed off under another key; in the
 * bound formats (4-6, BOUND) so are the kind of value and its record's key, which are not stored.
 *
 * Every process of the DIP, on every node, holds one over the same stored keys; the operator rotates in one
 * of them. The others load the new key when told (an ingest thread: by the key id its main thread seals
 * under) or when they meet a value sealed under it: open() then throws DataKeyNotLoaded, which readers
 * retry, and starts a reload (RELOAD_ON_MISS_MS apart at most), so the retry opens it; a key id that reload
 * does not find was never a key (a damaged header), and open() throws NoSuchDataKey for it from then on, so
 * readers set the row aside as unreadable instead of asking to be retried for ever. A reload also makes
 * the newest key the one sealed under, so every node converges on the key an operator rotated to.
 */
export class Sealer {
  private indexKey: Buffer | undefined;
  private reloading: Promise<number> | null = null;
  private lastMissReload = -Infinity;
  /** Key ids met in a value and not held, not yet looked for by a read of the stored keys started after. */
  private unconfirmed = new Set<number>();
  /**
   * Key ids such a read did not find: the store has never held them (a key is stored before anything is
   * sealed under it, and keys are never deleted), so a value naming one is damaged (NoSuchDataKey).
   */
  private readonly neverHeld = new Set<number>();

  private constructor(
    private readonly keys: Map<number, Buffer>,
    private current: number,
    private readonly kek: KeyEncryptionKey,
    private readonly store: DataKeyStore,
    private readonly options: SealerOptions,
  ) {}

  /**
   * A keyed hash for values that must be searchable but not readable (an MPAN in the archive index and in
   * the MPAN lookup). Derived from the first data key, so it stays the same across rotations: rotating
   * never re-keys what is indexed (isIndexValue tells such a value from the clear one it stands for).
   */
  index(value: string): string {
    if (!this.indexKey) {
      const first = this.keys.get(Math.min(...this.keys.keys()))!;
      this.indexKey = Buffer.from(hkdfSync('sha256', first, Buffer.alloc(0), 'opendip-archive-index', 32));
    }
    return createHmac('sha256', this.indexKey).update(value).digest('base64url');
  }

  /** Unwraps the stored data keys, creating the first one if there is none. */
  static async open(kek: KeyEncryptionKey, store: DataKeyStore, options: SealerOptions = {}): Promise<Sealer> {
    const keys = new Map<number, Buffer>();
    for (const { id, wrapped } of await store.dataKeys()) keys.set(id, await kek.unwrap(wrapped));
    const sealer = new Sealer(keys, Math.max(0, ...keys.keys()), kek, store, options);
    if (keys.size === 0) await sealer.rotate();
    return sealer;
  }

  /**
   * Reads the stored data keys again: unwraps those rotated in since (by another process or node) and seals
   * under the newest from now on. Concurrent calls share one read. Resolves to the key sealed under.
   */
  reload(): Promise<number> {
    this.reloading ??= this.loadNewKeys().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async loadNewKeys(): Promise<number> {
    // Taken before the store is read: only ids met before this read can be judged by it.
    const looked = [...this.unconfirmed];
    this.unconfirmed.clear();
    const loaded: number[] = [];
    for (const { id, wrapped } of await this.store.dataKeys()) {
      if (this.keys.has(id)) continue;
      this.keys.set(id, await this.kek.unwrap(wrapped));
      loaded.push(id);
    }
    for (const id of looked) if (!this.keys.has(id)) this.neverHeld.add(id);
    this.current = Math.max(this.current, ...loaded);
    if (loaded.length > 0) this.options.logger?.info({ dataKeyIds: loaded, current: this.current }, 'at-rest data keys rotated since this process read them loaded: values sealed under them open, and what it seals from now on is sealed under the newest');
    return this.current;
  }

  /** A value names a key not held: read the keys again, unless that was done (or started) within RELOAD_ON_MISS_MS. */
  private missed(): void {
    const now = (this.options.clock ?? Date).now();
    if (this.reloading !== null || now - this.lastMissReload < RELOAD_ON_MISS_MS) return;
    this.lastMissReload = now;
    this.reload().catch((err: unknown) => this.options.logger?.error({ err }, 'could not read the at-rest data keys again; values sealed under a key rotated elsewhere stay unread until a later try'));
  }

  /** A new data key for everything sealed from now on. */
  async rotate(): Promise<number> {
    const key = randomBytes(32);
    const id = await this.store.addDataKey(await this.kek.wrap(key));
    this.keys.set(id, key);
    this.current = id;
    return id;
  }

  get currentKeyId(): number {
    return this.current;
  }

  seal(plain: Buffer | string, kind: SealedKind, record: string, options?: SealOptions): Buffer {
    const format = options?.compress !== true ? VERSION : this.options.lz4Dictionary === true ? COMPRESSED_WITH_DICTIONARY : COMPRESSED;
    const bound = this.options.bindToRecord === true;
    const header = Buffer.alloc(5);
    header.writeUInt8(bound ? BOUND + format : format, 0);
    header.writeUInt32BE(this.current, 1);
    const body = format === COMPRESSED_WITH_DICTIONARY ? compressSync(plain, FORMAT_3_DICTIONARY) : format === COMPRESSED ? compressSync(plain) : plain;
    return Buffer.concat([header, gcmSeal(this.keys.get(this.current)!, body, bound ? boundAad(header, kind, record) : header)]);
  }

  /**
   * Seals one chunk of a large object (a publication) in the same layout as seal(); `context` (the object,
   * the chunk's index, whether it is the last) is authenticated with it, so chunks cannot be reordered,
   * moved to another object, or a stream cut short unnoticed.
   */
  sealChunk(plain: Buffer, context: Buffer): Buffer {
    const header = Buffer.alloc(5);
    header.writeUInt8(VERSION, 0);
    header.writeUInt32BE(this.current, 1);
    return Buffer.concat([header, gcmSeal(this.keys.get(this.current)!, plain, Buffer.concat([header, context]))]);
  }

  openChunk(sealed: Buffer, context: Buffer): Buffer {
    if (sealed.readUInt8(0) !== VERSION) throw new Error('sealed chunk has an unknown format version');
    return gcmOpen(this.keyOf(sealed), sealed.subarray(5), Buffer.concat([sealed.subarray(0, 5), context]));
  }

  private keyOf(sealed: Buffer): Buffer {
    const version = sealed.readUInt8(0);
    if (version < VERSION || version > BOUND + COMPRESSED_WITH_DICTIONARY) throw new Error('sealed value has an unknown format version');
    const id = sealed.readUInt32BE(1);
    const key = this.keys.get(id);
    if (key) return key;
    if (this.neverHeld.has(id)) throw new NoSuchDataKey(id);
    this.unconfirmed.add(id);
    this.missed();
    throw new DataKeyNotLoaded(id);
  }

  open(sealed: Buffer, kind: SealedKind, record: string): Buffer {
    const key = this.keyOf(sealed);
    const header = sealed.subarray(0, 5);
    const bound = sealed.readUInt8(0) > BOUND;
    let plain: Buffer;
    try {
      plain = gcmOpen(key, sealed.subarray(5), bound ? boundAad(header, kind, record) : header);
    } catch (err) {
      // GCM cannot tell another record's value from an altered one: either way it is not this record's.
      if (bound) throw new SealedForAnotherRecord(kind, record, `${KIND_WORDS[kind]} ${record}`);
      throw err;
    }
    const format = bound ? sealed.readUInt8(0) - BOUND : sealed.readUInt8(0);
    if (format === COMPRESSED_WITH_DICTIONARY) return uncompressSync(plain, FORMAT_3_DICTIONARY);
    return format === COMPRESSED ? uncompressSync(plain) : plain;
  }
}
