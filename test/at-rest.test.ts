import Database from 'better-sqlite3';
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compressSync, uncompressSync } from 'lz4-napi';
import { afterAll, describe, expect, it } from 'vitest';
import { FileKeyEncryptionKey, Sealer, type SealerOptions } from '../src/security/at-rest.js';
import { SealedForAnotherRecord } from '../src/ports/errors.js';
import { openSealer } from '../src/adapters/backend.js';
import { loadConfig } from '../src/config.js';
import { FORMAT_3_DICTIONARY } from '../src/security/lz4-dictionary.js';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

/** Every byte SQLite holds for the database: the main file and the write-ahead log. */
function databaseBytes(dataDir: string): Buffer {
  const file = join(dataDir, 'dip.db');
  return Buffer.concat([file, `${file}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f)));
}

describe('encryption at rest', () => {
  let t: TestDip | undefined;
  afterAll(async () => {
    await t?.close();
  });

  it('keeps no payload, raw request or MPAN in plaintext on disk, yet delivers, replays and filters by MPAN', async () => {
    t = await startTestDip();
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const r = await t.receiver();
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url });
    const mpan = mpanCore('at-rest');
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', mpan, primaryRecipients: [sup.dipId] });
    expect((await sds.client.submit('IF-021', [item])).status).toBe(201);
    await waitFor(() => r.calls.length === 1, 5000, 'delivery');
    expect((r.calls[0]!.messages[0] as any).payload.CommonBlock.M0.MPANCore).toBe(mpan);

    const bytes = databaseBytes(t.config.dataDir);
    expect(bytes.length).toBeGreaterThan(10_000);
    for (const needle of [mpan, 'CustomBlock', 'settlementDayConsumptionPeriods', 'issuingDataServiceDIPID']) {
      expect(bytes.includes(Buffer.from(needle)), `'${needle}' found in the database files`).toBe(false);
    }
    // The same check finds plaintext when there is some: the sender reference is stored in the clear.
    expect(bytes.includes(Buffer.from(item.payload.CommonBlock.S1.senderUniqueReference))).toBe(true);
    // The archived copy and the raw request were compressed before sealing: well under their texts' lengths.
    // Format 5 by default (format 2, LZ4 without the dictionary, bound to its record: storage.atRest.bindToRecord).
    const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true });
    const stored = db.prepare('SELECT outbound FROM messages').all() as Array<{ outbound: Buffer }>;
    const raw = db.prepare('SELECT raw FROM batches').all() as Array<{ raw: Buffer }>;
    db.close();
    expect(stored.map((r) => r.outbound[0])).toEqual([5]);
    expect(stored[0]!.outbound.length).toBeLessThan(JSON.stringify(item).length / 2);
    expect(raw.map((r) => r.raw[0])).toEqual([5]);
    expect(raw[0]!.raw.length).toBeLessThan(JSON.stringify([item]).length / 2);

    const from = new Date(Date.now() - 3600_000).toISOString().slice(0, 19) + '+00:00';
    const to = new Date(Date.now() + 3600_000).toISOString().slice(0, 19) + '+00:00';
    const replay = await sup.client.replay('IF-021', sup.dipId, { datetimeFrom: from, datetimeTo: to, MPAN: mpan });
    expect((replay.body as any[]).length).toBe(1);
    const none = await sup.client.replay('IF-021', sup.dipId, { datetimeFrom: from, datetimeTo: to, MPAN: mpanCore('other') });
    // Nothing matches: the published 200 answer holds at least one message, so a 400 says so (api.emptyReplay).
    expect(none.status).toBe(400);
    expect(JSON.stringify(none.body)).toContain('nothing to replay');
  });

  it('rotates data keys: new writes use the new key, old values still open; a wrong KEK opens nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-keys-'));
    const backend = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    const store = backend.dataKeys;
    const sealer = await Sealer.open(new FileKeyEncryptionKey(join(dir, 'kek.key')), store);
    const first = sealer.seal('personal data', 'outbound', 'T-1');
    const firstKey = sealer.currentKeyId;
    expect(await sealer.rotate()).toBeGreaterThan(firstKey);
    const second = sealer.seal('personal data', 'outbound', 'T-1');
    expect(second.readUInt32BE(1)).not.toBe(first.readUInt32BE(1));
    const reopened = await Sealer.open(new FileKeyEncryptionKey(join(dir, 'kek.key')), store);
    expect(reopened.open(first, 'outbound', 'T-1').toString()).toBe('personal data');
    expect(reopened.open(second, 'outbound', 'T-1').toString()).toBe('personal data');
    expect(reopened.index('1200000000009')).toBe(sealer.index('1200000000009'));
    // Tampering is detected.
    const tampered = Buffer.from(second);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => reopened.open(tampered, 'outbound', 'T-1')).toThrow();
    // Data keys are stored only wrapped: another KEK cannot unwrap them.
    await expect(Sealer.open(new FileKeyEncryptionKey(join(dir, 'other.key')), store)).rejects.toThrow();
    const raw = new Database(join(dir, 'dip.db'), { readonly: true }).prepare('SELECT count(*) AS n FROM data_keys').get() as { n: number };
    expect(raw.n).toBe(2);
    await backend.close();
  });

  it('compresses an outbound copy before sealing it: under a third of the bytes, the same text back, the format byte authenticated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-keys-'));
    const backend = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    const sealer = await Sealer.open(new FileKeyEncryptionKey(join(dir, 'kek.key')), backend.dataKeys);
    const copy = JSON.stringify(buildIF021({ senderDipId: '2000000001', senderRole: 'SDS', mpan: mpanCore('deflate'), primaryRecipients: ['1000000001'] }));
    const plain = sealer.seal(copy, 'outbound', 'T-1');
    const compressed = sealer.seal(copy, 'outbound', 'T-1', { compress: true });
    expect(plain.length).toBeGreaterThan(copy.length);
    expect(compressed.length).toBeLessThan(copy.length / 2.5);
    expect(sealer.open(compressed, 'outbound', 'T-1').toString('utf8')).toBe(copy);
    // Values sealed before compression existed (format 1) still open as they are.
    expect(sealer.open(plain, 'outbound', 'T-1').toString('utf8')).toBe(copy);
    // Claiming another format fails authentication instead of inflating (or not inflating) the wrong bytes.
    // (Format 2: the default configuration writes no format 3; the sealed layout's tests flip format 3.)
    expect(compressed[0]).toBe(2);
    for (const [value, other] of [[compressed, 1], [compressed, 3], [plain, 2], [plain, 3]] as const) {
      const flipped = Buffer.from(value);
      flipped[0] = other;
      expect(() => sealer.open(flipped, 'outbound', 'T-1')).toThrow();
    }
    await backend.close();
  });
});

/**
 * The sealed layout as documented on Sealer (format, key id, IV, tag, ciphertext; the 5-byte header is
 * the AAD), written out here independently of at-rest.ts: seal() has built it in one Buffer since
 * 2026-12-04 (issue 9), and values sealed before must still open, MPAN index values still match.
 */
describe('sealed layout', () => {
  const dataKey = Buffer.alloc(32, 7);
  const knownKeySealer = (options?: SealerOptions): Promise<Sealer> =>
    Sealer.open({ wrap: async (k) => k, unwrap: async (k) => k }, { dataKeys: async () => [{ id: 3, wrapped: dataKey }], addDataKey: async () => 4 }, options);
  // Multi-byte UTF-8 (byte length ≠ string length), empty, a Buffer, a large JSON text.
  const samples: Array<Buffer | string> = ['', 'a', 'héllo ✓ 😀 ünïcödé', Buffer.from([0, 1, 2, 255]), JSON.stringify(buildIF021({ senderDipId: '2000000001', senderRole: 'SDS', mpan: mpanCore('layout'), primaryRecipients: ['1000000001'] }))];

  function referenceOpen(sealed: Buffer): { format: number; keyId: number; plain: Buffer } {
    const d = createDecipheriv('aes-256-gcm', dataKey, sealed.subarray(5, 17));
    d.setAAD(sealed.subarray(0, 5));
    d.setAuthTag(sealed.subarray(17, 33));
    const plain = Buffer.concat([d.update(sealed.subarray(33)), d.final()]);
    const format = sealed[0]!;
    return { format, keyId: sealed.readUInt32BE(1), plain: format === 3 ? uncompressSync(plain, FORMAT_3_DICTIONARY) : format === 2 ? uncompressSync(plain) : plain };
  }

  /**
   * How seal() built a value until 2026-12-04: a header Buffer, then the IV, tag and ciphertext concatenated;
   * compressed values in format 2 (LZ4 without a dictionary) until 2026-12-05.
   */
  function referenceSeal(plain: Buffer | string, compress: boolean): Buffer {
    const header = Buffer.from([compress ? 2 : 1, 0, 0, 0, 3]);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', dataKey, iv);
    c.setAAD(header);
    const body = c.update(compress ? compressSync(plain) : typeof plain === 'string' ? Buffer.from(plain) : plain);
    const last = c.final();
    return Buffer.concat([header, iv, c.getAuthTag(), body, last]);
  }

  it('seals in the documented layout, with and without compression (format 2 by default, 3 with the dictionary), and opens what the earlier construction sealed', async () => {
    for (const lz4Dictionary of [false, true]) {
      const sealer = await knownKeySealer({ lz4Dictionary });
      for (const sample of samples) {
        const bytes = Buffer.from(sample);
        for (const compress of [false, true]) {
          const sealed = sealer.seal(sample, 'outbound', 'T-1', { compress });
          const read = referenceOpen(sealed);
          expect(read.format).toBe(!compress ? 1 : lz4Dictionary ? 3 : 2);
          expect(read.keyId).toBe(3);
          expect(read.plain.equals(bytes)).toBe(true);
          expect(sealer.open(sealed, 'outbound', 'T-1').equals(bytes)).toBe(true);
          expect(sealer.open(referenceSeal(sample, compress), 'outbound', 'T-1').equals(bytes)).toBe(true);
        }
      }
    }
  });

  it('compresses with the frozen dictionary (format 3) when told: an IF-021 copy in a good third less than format 2 took', async () => {
    const sealer = await knownKeySealer({ lz4Dictionary: true });
    const copy = samples.at(-1) as string;
    const format2 = referenceSeal(copy, true);
    const format3 = sealer.seal(copy, 'outbound', 'T-1', { compress: true });
    expect([format2[0], format3[0]]).toEqual([2, 3]);
    expect(format3.length).toBeLessThan(format2.length * 0.75);
    expect(sealer.open(format3, 'outbound', 'T-1').toString('utf8')).toBe(copy);
    expect(sealer.open(format2, 'outbound', 'T-1').toString('utf8')).toBe(copy);
  });

  it("writes bound formats (5; 6 with storage.atRest.lz4Dictionary) with the DIP's default configuration, formats 2 and 3 with storage.atRest.bindToRecord off; every sealer opens all four", async () => {
    // Through openSealer, where every sealer the DIP seals with is made (main process, ingest threads,
    // delivery processes): a node that does not write a format still reads what an upgraded one wrote.
    const dataDir = mkdtempSync(join(tmpdir(), 'opendip-keys-'));
    const backend = openSqliteBackend(join(dataDir, 'dip.db'), { clock: systemClock });
    const defaults = loadConfig({}, { dataDir });
    // One after the other: the first makes the store's first data key, the others read it.
    const sealers: Sealer[] = [];
    for (const bindToRecord of [false, true]) {
      for (const lz4Dictionary of [false, true]) sealers.push(await openSealer({ ...defaults, storage: { ...defaults.storage, atRest: { bindToRecord, lz4Dictionary } } }, backend.dataKeys));
    }
    const copy = samples.at(-1) as string;
    const sealed = sealers.map((s) => s.seal(copy, 'outbound', 'T-1', { compress: true }));
    expect(sealed.map((v) => v[0])).toEqual([2, 3, 5, 6]);
    expect(defaults.storage.atRest).toEqual({ bindToRecord: true, lz4Dictionary: false });
    expect((await openSealer(defaults, backend.dataKeys)).seal(copy, 'outbound', 'T-1', { compress: true })[0]).toBe(5);
    for (const sealer of sealers) for (const value of sealed) expect(sealer.open(value, 'outbound', 'T-1').toString('utf8')).toBe(copy);
    await backend.close();
  });

  it('binds a value to its record (formats 4-6): opened as another record or another kind it is refused, naming the record read; formats 1-3 open as any', async () => {
    const bound = await knownKeySealer({ bindToRecord: true });
    const boundDictionary = await knownKeySealer({ bindToRecord: true, lz4Dictionary: true });
    const unbound = await knownKeySealer();
    for (const sample of samples) {
      const bytes = Buffer.from(sample);
      for (const [sealer, compress, format] of [[bound, false, 4], [bound, true, 5], [boundDictionary, true, 6]] as const) {
        const value = sealer.seal(sample, 'outbound', 'T-A', { compress });
        expect(value[0]).toBe(format);
        for (const reader of [bound, unbound]) expect(reader.open(value, 'outbound', 'T-A').equals(bytes)).toBe(true);
        expect(() => unbound.open(value, 'outbound', 'T-B')).toThrow(SealedForAnotherRecord);
        expect(() => unbound.open(value, 'outbound', 'T-B')).toThrow("the sealed outbound copy of message T-B does not open as that record's");
        // Same key, another kind of value: a raw request's batch key is never an outbound copy's.
        expect(() => unbound.open(value, 'rawRequest', 'T-A')).toThrow('raw request of batch T-A');
        // A prefix or extension of the key is another key.
        expect(() => unbound.open(value, 'outbound', 'T-')).toThrow(SealedForAnotherRecord);
        expect(() => unbound.open(value, 'outbound', 'T-AA')).toThrow(SealedForAnotherRecord);
        // The bound format cannot be passed off as its unbound one (the format byte is authenticated).
        const flipped = Buffer.from(value);
        flipped[0] = format - 3;
        expect(() => unbound.open(flipped, 'outbound', 'T-A')).toThrow();
      }
      const old = unbound.seal(sample, 'outbound', 'T-A', { compress: true });
      expect(old[0]).toBe(2);
      expect(bound.open(old, 'outbound', 'anything').equals(bytes)).toBe(true);
    }
    // A key longer than the buffer kept for the authenticated data, multi-byte UTF-8 included.
    const long = 'ü😀'.repeat(2000);
    const value = bound.seal('x', 'totpSecret', long);
    expect(bound.open(value, 'totpSecret', long).toString()).toBe('x');
    expect(() => bound.open(value, 'totpSecret', `${long}.`)).toThrow(SealedForAnotherRecord);
    expect(bound.open(bound.seal('y', 'nodeSecret', 'k'), 'nodeSecret', 'k').toString()).toBe('y');
  });

  it('keeps the format 3 dictionary byte for byte: archived values open only with it', () => {
    // Changing the dictionary would make every value sealed in format 3 unreadable: a new dictionary is a new format.
    expect(createHash('sha256').update(FORMAT_3_DICTIONARY).digest('hex')).toBe('780ad11c1a5cd09552d291a6a95542f6b6c4f6711374fc0431c5e68fbe6a7753');
  });

  it('indexes an MPAN as the keyed hash it always was (existing archives stay searchable)', async () => {
    const sealer = await knownKeySealer();
    const indexKey = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'opendip-archive-index', 32));
    for (const mpan of ['1200000000009', '1900000000001', '']) {
      expect(sealer.index(mpan)).toBe(createHmac('sha256', indexKey).update(mpan).digest('base64url'));
    }
  });
});
