import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobTooLarge, type PublicationBlobs, type PublicationRecord } from '../../src/ports/publications.js';
import { CHUNK_BYTES } from '../../src/security/sealed-stream.js';
import { useBackend, type BackendFactory } from './fixtures.js';

let n = 0;
export function publication(over: Partial<PublicationRecord> = {}): PublicationRecord {
  n += 1;
  return {
    id: `pub-${process.pid}-${n}-${randomBytes(3).toString('hex')}`,
    channel: 'REP-002',
    publicationType: 'DUoS',
    version: `v${n}`,
    publisherDipId: 'ISD0000001',
    effectiveFrom: '2026-01-01',
    effectiveTo: '2026-01-31',
    format: 'csv',
    compression: 'none',
    fileName: 'report.csv',
    description: null,
    public: false,
    recipients: null,
    size: 10,
    sha256: 'ab'.repeat(32),
    publishedAt: 1_700_000_000_000 + n * 1000,
    ...over,
  };
}

export function publicationIndexContract(name: string, open: BackendFactory): void {
  describe(`PublicationIndex contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('records a publication durably and finds it by channel, type, version and date, newest first', async () => {
      const type = `T${randomBytes(3).toString('hex')}`;
      const a = publication({ publicationType: type, publishedAt: 1000 });
      const b = publication({ publicationType: type, publishedAt: 2000, public: true });
      expect(await ctx.backend.publications.insert(a)).toEqual({ ok: true });
      expect(await ctx.backend.publications.insert(b)).toEqual({ ok: true });
      await ctx.backend.close();
      const index = (await ctx.reopen()).publications;
      expect(await index.get(a.id)).toEqual(a);
      expect((await index.find({ channel: 'REP-002', publicationType: type, limit: 10 })).map((p) => p.id)).toEqual([b.id, a.id]);
      expect((await index.find({ publicationType: type, version: a.version, limit: 10 })).map((p) => p.id)).toEqual([a.id]);
      expect((await index.find({ publicationType: type, from: 1500, limit: 10 })).map((p) => p.id)).toEqual([b.id]);
      expect((await index.find({ publicationType: type, to: 1500, limit: 10 })).map((p) => p.id)).toEqual([a.id]);
      expect((await index.find({ publicationType: type, publicOnly: true, limit: 10 })).map((p) => p.id)).toEqual([b.id]);
      expect(await index.find({ publicationType: type, channels: [], limit: 10 })).toEqual([]);
      expect((await index.find({ publicationType: type, channels: ['IF-047', 'REP-002'], limit: 1 })).map((p) => p.id)).toEqual([b.id]);
      expect(await index.get('no-such-publication')).toBeUndefined();
    });

    // The listing route pages on `after` (206 and X-Continuation-Token): four versions published within one
    // second, past a limit of 3, must come back in two pages with none skipped or listed twice, on every engine
    // (ties on publishedAt are ordered by ID).
    it('pages by `after`: four versions in one second past the limit, none skipped or listed twice', async () => {
      const type = `P${randomBytes(3).toString('hex')}`;
      const at = 1_650_000_000_000;
      const made = [at, at, at + 400, at + 400].map((publishedAt, i) => publication({ publicationType: type, version: String(i), publishedAt }));
      for (const p of made) expect(await ctx.backend.publications.insert(p)).toEqual({ ok: true });
      const index = ctx.backend.publications;
      const first = await index.find({ publicationType: type, limit: 3 });
      expect(first).toHaveLength(3);
      const cut = first.at(-1)!;
      const rest = await index.find({ publicationType: type, after: { publishedAt: cut.publishedAt, id: cut.id }, limit: 3 });
      expect([...first, ...rest].map((p) => p.version).sort()).toEqual(['0', '1', '2', '3']);
      expect(await index.find({ publicationType: type, after: { publishedAt: rest.at(-1)!.publishedAt, id: rest.at(-1)!.id }, limit: 3 })).toEqual([]);
      // Newest first, by ID within one millisecond: the same order a single page lists.
      expect([...first, ...rest].map((p) => p.id)).toEqual((await index.find({ publicationType: type, limit: 10 })).map((p) => p.id));
    });

    it('leaves a new publication awaiting its notice until its notice is recorded queued, durably', async () => {
      // Published long before anything the other tests insert: the listing is oldest first.
      const older = publication({ publishedAt: 10 });
      const newer = publication({ publishedAt: 20 });
      for (const p of [older, newer]) await ctx.backend.publications.insert(p);
      const awaiting = async (before: number) => (await ctx.backend.publications.awaitingNotice(before, 1000)).map((p) => p.id).filter((id) => id === older.id || id === newer.id);
      expect(await awaiting(15)).toEqual([older.id]);
      expect(await awaiting(21)).toEqual([older.id, newer.id]);
      expect((await ctx.backend.publications.awaitingNotice(21, 1000)).find((p) => p.id === newer.id)).toEqual(newer);
      await ctx.backend.publications.noticeQueued(older.id);
      await ctx.backend.publications.noticeQueued('no-such-publication');
      await ctx.backend.close();
      const index = (await ctx.reopen()).publications;
      expect(await awaiting(21)).toEqual([newer.id]);
      // Marked or not, it is listed and read as before (marked with no claim: its notice went to nobody).
      expect(await index.get(older.id)).toEqual({ ...older, noticeRecipients: [] });
      expect((await index.find({ publicationType: older.publicationType, from: 10, to: 20, limit: 10 })).map((p) => p.id)).toEqual([newer.id, older.id]);
    });

    it('finds by the date a publication is effective on', async () => {
      const type = `T${randomBytes(3).toString('hex')}`;
      const jan = publication({ publicationType: type, effectiveFrom: '2026-01-01', effectiveTo: '2026-01-31' });
      const open = publication({ publicationType: type, effectiveFrom: '2026-02-01', effectiveTo: null });
      await ctx.backend.publications.insert(jan);
      await ctx.backend.publications.insert(open);
      expect((await ctx.backend.publications.find({ publicationType: type, effectiveOn: '2026-01-31', limit: 10 })).map((p) => p.id)).toEqual([jan.id]);
      expect((await ctx.backend.publications.find({ publicationType: type, effectiveOn: '2027-05-01', limit: 10 })).map((p) => p.id)).toEqual([open.id]);
    });

    it('finds a publication effective from a time of day on that day, as one effective to a time of day', async () => {
      const type = `T${randomBytes(3).toString('hex')}`;
      // In effect for part of 1 March and part of 31 March: effective on both days, as the metadata allows date-times.
      const march = publication({ publicationType: type, effectiveFrom: '2026-03-01T06:00:00Z', effectiveTo: '2026-03-31T18:00:00Z' });
      await ctx.backend.publications.insert(march);
      const on = async (day: string) => (await ctx.backend.publications.find({ publicationType: type, effectiveOn: day, limit: 10 })).map((p) => p.id);
      expect([await on('2026-02-28'), await on('2026-03-01'), await on('2026-03-31'), await on('2026-04-01')]).toEqual([[], [march.id], [march.id], []]);
    });

    it('finds for one participant only what is for every recipient, names it, or was published by it', async () => {
      const type = `T${randomBytes(3).toString('hex')}`;
      const all = publication({ publicationType: type, publishedAt: 1000 });
      const forOne = publication({ publicationType: type, publishedAt: 2000, recipients: ['SUP0000001', 'SUP0000011'] });
      const forOther = publication({ publicationType: type, publishedAt: 3000, recipients: ['SUP00000011'] });
      for (const p of [all, forOne, forOther]) await ctx.backend.publications.insert(p);
      const ids = async (namedFor: string, limit = 10) => (await ctx.backend.publications.find({ publicationType: type, namedFor, limit })).map((p) => p.id);
      expect(await ids('SUP0000001')).toEqual([forOne.id, all.id]);
      // An ID that is part of another (SUP0000001 in SUP00000011) is not named by it, nor one in another case; a LIKE wildcard is a plain character.
      expect(await ids('SUP0000011')).toEqual([forOne.id, all.id]);
      expect(await ids('sup0000001')).toEqual([all.id]);
      expect(await ids('SUP000000_1')).toEqual([all.id]);
      expect(await ids('SUP0000002', 1)).toEqual([all.id]);
      // The publisher sees its own.
      expect(await ids('ISD0000001')).toEqual([forOther.id, forOne.id, all.id]);
    });

    it('never overwrites: the same version is refused, and another publisher may not add versions to a type', async () => {
      const type = `T${randomBytes(3).toString('hex')}`;
      const first = publication({ publicationType: type, version: '1.0' });
      await ctx.backend.publications.insert(first);
      const again = await ctx.backend.publications.insert(publication({ publicationType: type, version: '1.0' }));
      expect(again).toMatchObject({ ok: false, reason: 'version-exists', existing: { id: first.id } });
      const other = await ctx.backend.publications.insert(publication({ publicationType: type, version: '2.0', publisherDipId: 'ISD0000002' }));
      expect(other).toEqual({ ok: false, reason: 'owned-by-other', owner: 'ISD0000001' });
      expect(await ctx.backend.publications.insert(publication({ publicationType: type, version: '2.0' }))).toEqual({ ok: true });
      expect((await ctx.backend.publications.find({ publicationType: type, limit: 10 })).map((p) => p.version).sort()).toEqual(['1.0', '2.0']);
    });

    it('reads a publication type in any case: another spelling joins the type under its first spelling, and finds it', async () => {
      const type = `Duos${randomBytes(3).toString('hex')}`;
      const first = publication({ publicationType: type, version: '1' });
      expect(await ctx.backend.publications.insert(first)).toEqual({ ok: true });
      // The same publisher, another spelling: the type as first published (one type, one owner, one line of versions).
      const lower = publication({ publicationType: type.toLowerCase(), version: '2' });
      expect(await ctx.backend.publications.insert(lower)).toEqual({ ok: true, publicationType: type });
      expect((await ctx.backend.publications.get(lower.id))?.publicationType).toBe(type);
      expect(await ctx.backend.publications.insert(publication({ publicationType: type.toUpperCase(), version: '1' }))).toMatchObject({ ok: false, reason: 'version-exists', existing: { id: first.id } });
      expect(await ctx.backend.publications.insert(publication({ publicationType: type.toUpperCase(), version: '3', publisherDipId: 'ISD0000002' }))).toEqual({ ok: false, reason: 'owned-by-other', owner: 'ISD0000001' });
      expect((await ctx.backend.publications.find({ publicationType: type.toUpperCase(), limit: 10 })).map((p) => p.version).sort()).toEqual(['1', '2']);
    });

    it('withdraws a publication once: listed nowhere after, its record kept saying who, when and why', async () => {
      const type = `W${randomBytes(3).toString('hex')}`;
      const p = publication({ publicationType: type });
      await ctx.backend.publications.insert(p);
      const w = { at: 1_800_000_000_000, by: 'operator:alice', reason: 'wrong channel' };
      expect((await ctx.backend.publications.withdraw(p.id, w))?.record.withdrawn).toEqual(w);
      expect(await ctx.backend.publications.withdraw(p.id, { ...w, reason: 'again' })).toBeUndefined();
      expect(await ctx.backend.publications.withdraw('no-such-publication', w)).toBeUndefined();
      expect((await ctx.backend.publications.get(p.id))?.withdrawn).toEqual(w);
      expect(await ctx.backend.publications.find({ publicationType: type, limit: 10 })).toEqual([]);
      expect((await ctx.backend.publications.awaitingNotice(Number.MAX_SAFE_INTEGER, 1000)).map((r) => r.id)).not.toContain(p.id);
    });

    it('owes a withdrawal notice only once the availability notice was claimed, and claims none after the withdrawal', async () => {
      const index = ctx.backend.publications;
      const w = { at: 1_800_000_000_000, by: 'operator:alice', reason: 'wrong channel' };
      const [untold, claimed, released, queued] = ['U', 'C', 'R', 'Q'].map((k) => publication({ publicationType: `${k}${randomBytes(3).toString('hex')}` }));
      for (const p of [untold!, claimed!, released!, queued!]) await index.insert(p);
      expect(await index.claimNotice(claimed!.id, 1, ['SUP0000001'])).toBe(true);
      expect(await index.claimNotice(released!.id, 2, ['SUP0000001'])).toBe(true);
      await index.claimNotice(queued!.id, 3, ['SUP0000001']);
      await index.noticeQueued(queued!.id);
      expect((await index.withdraw(untold!.id, w))?.notice).toBe('none');
      expect((await index.withdraw(claimed!.id, w))?.notice).toBe('after-availability');
      expect((await index.withdraw(released!.id, w))?.notice).toBe('after-availability');
      expect((await index.withdraw(queued!.id, w))?.notice).toBe('owed');
      // Withdrawn: no claim is taken. A claim whose append failed is taken back, and its withdrawal notice
      // stays owed: the append may have committed with its answer lost, and "available" reached recipients.
      expect(await index.claimNotice(untold!.id, 4, ['SUP0000001'])).toBe(false);
      await index.releaseNotice(released!.id, 2);
      const awaitingWithdrawal = (await index.awaitingNotice(Number.MAX_SAFE_INTEGER, 1000, 'withdrawal')).map((r) => r.id);
      expect([untold, claimed, released, queued].map((p) => awaitingWithdrawal.includes(p!.id))).toEqual([false, true, true, true]);
      // Each withdrawal's journal entry is owed until recorded written.
      const unjournalled = async () => (await index.awaitingNotice(Number.MAX_SAFE_INTEGER, 1000, 'withdrawal-journal')).map((r) => r.id);
      expect(await unjournalled()).toEqual(expect.arrayContaining([untold!.id, claimed!.id, released!.id, queued!.id]));
      await index.noticeQueued(untold!.id, 'withdrawal-journal');
      expect(await unjournalled()).not.toContain(untold!.id);
    });

    it("records who the availability notice went to: each claim's recipients joining the earlier ones', none when queued unclaimed, and keeps them through the withdrawal", async () => {
      const index = ctx.backend.publications;
      const [claimed, unclaimed, untold] = ['A', 'N', 'U'].map((k) => publication({ publicationType: `${k}${randomBytes(3).toString('hex')}` }));
      for (const p of [claimed!, unclaimed!, untold!]) await index.insert(p);
      expect((await index.get(claimed!.id))?.noticeRecipients).toBeUndefined();
      expect(await index.claimNotice(claimed!.id, 1, ['SUP0000002', 'SUP0000001'])).toBe(true);
      // Taken back, then claimed again for other recipients: the first append may have committed, its answer lost.
      await index.releaseNotice(claimed!.id, 1);
      expect(await index.claimNotice(claimed!.id, 2, ['SUP0000003', 'SUP0000001'])).toBe(true);
      await index.noticeQueued(claimed!.id);
      expect((await index.get(claimed!.id))?.noticeRecipients).toEqual(['SUP0000001', 'SUP0000002', 'SUP0000003']);
      // Queued with no recipient (no claim): it went to nobody.
      await index.noticeQueued(unclaimed!.id);
      expect((await index.get(unclaimed!.id))?.noticeRecipients).toEqual([]);
      const w = { at: 1_800_000_000_000, by: 'operator:alice', reason: 'wrong channel' };
      expect((await index.withdraw(claimed!.id, w))?.record.noticeRecipients).toEqual(['SUP0000001', 'SUP0000002', 'SUP0000003']);
      expect((await index.awaitingNotice(Number.MAX_SAFE_INTEGER, 1000, 'withdrawal')).find((r) => r.id === claimed!.id)?.noticeRecipients).toEqual(['SUP0000001', 'SUP0000002', 'SUP0000003']);
      // A claim refused (withdrawn) records nobody.
      await index.withdraw(untold!.id, w);
      expect(await index.claimNotice(untold!.id, 3, ['SUP0000001'])).toBe(false);
      expect((await index.get(untold!.id))?.noticeRecipients).toBeUndefined();
    });

    it('offers only superseded versions older than the cut-off to retention, and removes them', async () => {
      const channel = `C${randomBytes(3).toString('hex')}`;
      const old1 = publication({ channel, publicationType: 'A', publishedAt: 1000 });
      const old2 = publication({ channel, publicationType: 'A', publishedAt: 2000 });
      const newest = publication({ channel, publicationType: 'A', publishedAt: 3000 });
      const alone = publication({ channel, publicationType: 'B', publishedAt: 500 });
      for (const p of [old1, old2, newest, alone]) await ctx.backend.publications.insert(p);
      expect((await ctx.backend.publications.superseded(channel, 2500, 10)).map((p) => p.id)).toEqual([old1.id, old2.id]);
      expect((await ctx.backend.publications.superseded(channel, 1500, 10)).map((p) => p.id)).toEqual([old1.id]);
      expect(await ctx.backend.publications.channels()).toContain(channel);
      await ctx.backend.publications.remove(old1.id);
      expect(await ctx.backend.publications.get(old1.id)).toBeUndefined();
      expect((await ctx.backend.publications.superseded(channel, 9999, 10)).map((p) => p.id)).toEqual([old2.id]);
    });

    it('counts a version superseded only by a newer one its readers can read: for everyone, or for the same recipients', async () => {
      const channel = `C${randomBytes(3).toString('hex')}`;
      // One publisher's reports for two suppliers under one type, and one for everyone before them.
      const forAll = publication({ channel, publicationType: 'R', publishedAt: 1000, recipients: null });
      const forA1 = publication({ channel, publicationType: 'R', publishedAt: 2000, recipients: ['SUP000000A'] });
      const forA2 = publication({ channel, publicationType: 'R', publishedAt: 3000, recipients: ['SUP000000A'] });
      const forB = publication({ channel, publicationType: 'R', publishedAt: 4000, recipients: ['SUP000000B'] });
      for (const p of [forAll, forA1, forA2, forB]) await ctx.backend.publications.insert(p);
      // A's first report is superseded by A's second; A's second (the newest A can read) is not by B's,
      // nor is the one for everyone by reports most of its readers cannot read.
      expect((await ctx.backend.publications.superseded(channel, 9999, 10)).map((p) => p.id)).toEqual([forA1.id]);
      const forAllAgain = publication({ channel, publicationType: 'R', publishedAt: 5000, recipients: null });
      await ctx.backend.publications.insert(forAllAgain);
      expect((await ctx.backend.publications.superseded(channel, 9999, 10)).map((p) => p.id)).toEqual([forAll.id, forA1.id, forA2.id, forB.id]);
    });
  });
}

export interface OpenedBlobs {
  blobs: PublicationBlobs;
  /** The same store opened afresh (after close), to prove durability. */
  reopen(): Promise<PublicationBlobs>;
  /** Every byte the store keeps for a blob, as stored. */
  stored(id: string): Promise<Buffer>;
  /** Leaves bytes under the ID as a crash half way through an upload does (no whole blob). */
  strand(id: string): Promise<void>;
  cleanup(): Promise<void>;
}

async function* pieces(data: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function readAll(blobs: PublicationBlobs, id: string, size: number, range?: { start: number; end: number }): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of blobs.read(id, size, range)) parts.push(p);
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export function publicationBlobsContract(name: string, open: () => Promise<OpenedBlobs>): void {
  describe(`PublicationBlobs contract: ${name}`, () => {
    let s: OpenedBlobs;
    beforeEach(async () => {
      s = await open();
    });
    afterEach(async () => {
      await s.blobs.close();
      await s.cleanup();
    });
    const id = () => `b-${randomBytes(6).toString('hex')}`;

    it.each([0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 12345])('keeps %i bytes whole, with their size and SHA-256, across a reopen', async (size) => {
      const data = randomBytes(size);
      const key = id();
      expect(await s.blobs.put(key, pieces(data), { maxBytes: 10 * CHUNK_BYTES })).toEqual({ size, sha256: sha256(data) });
      await s.blobs.close();
      s.blobs = await s.reopen();
      expect((await readAll(s.blobs, key, size)).equals(data)).toBe(true);
    });

    it('reads any range, across chunk boundaries, opening only what it touches', async () => {
      const size = 2 * CHUNK_BYTES + 777;
      const data = randomBytes(size);
      const key = id();
      await s.blobs.put(key, pieces(data, 100_000), { maxBytes: size });
      for (const [start, end] of [
        [0, 0],
        [CHUNK_BYTES - 1, CHUNK_BYTES],
        [5, 2 * CHUNK_BYTES + 10],
        [size - 1, size - 1],
        [CHUNK_BYTES + 3, size + 500],
      ] as const) {
        expect((await readAll(s.blobs, key, size, { start, end })).equals(data.subarray(start, end + 1))).toBe(true);
      }
    });

    it('keeps no plain text at rest', async () => {
      const marker = Buffer.from('GSP_GROUP_PLAIN_TEXT_MARKER,'.repeat(4000));
      const key = id();
      await s.blobs.put(key, pieces(marker), { maxBytes: marker.length });
      const stored = await s.stored(key);
      expect(stored.length).toBeGreaterThan(marker.length);
      expect(stored.includes(Buffer.from('GSP_GROUP_PLAIN_TEXT_MARKER'))).toBe(false);
    });

    it('refuses a payload past the limit and keeps nothing of it', async () => {
      const key = id();
      await expect(s.blobs.put(key, pieces(randomBytes(CHUNK_BYTES + 10)), { maxBytes: CHUNK_BYTES })).rejects.toBeInstanceOf(BlobTooLarge);
      await expect(readAll(s.blobs, key, CHUNK_BYTES)).rejects.toThrow();
    });

    it('keeps nothing of an upload whose source fails half way', async () => {
      const key = id();
      async function* failing(): AsyncGenerator<Buffer> {
        yield randomBytes(CHUNK_BYTES);
        yield randomBytes(CHUNK_BYTES);
        throw new Error('connection reset by the publisher');
      }
      await expect(s.blobs.put(key, failing(), { maxBytes: 10 * CHUNK_BYTES })).rejects.toThrow('connection reset');
      await expect(readAll(s.blobs, key, 2 * CHUNK_BYTES)).rejects.toThrow();
    });

    it('lists every ID it holds bytes for, whole or partial, with when they were written, and discards either', async () => {
      const whole = id();
      const partial = id();
      const before = Date.now();
      await s.blobs.put(whole, pieces(randomBytes(CHUNK_BYTES + 10)), { maxBytes: 2 * CHUNK_BYTES });
      await s.strand(partial);
      const after = Date.now();
      const listed = new Map<string, number>();
      for await (const e of s.blobs.list()) listed.set(e.id, e.writtenAt);
      expect([...listed.keys()].sort()).toEqual([whole, partial].sort());
      // The store's own clock (a JetStream server on this machine, or the filesystem): within a second of ours.
      for (const writtenAt of listed.values()) {
        expect(writtenAt).toBeGreaterThanOrEqual(before - 1000);
        expect(writtenAt).toBeLessThanOrEqual(after + 1000);
      }
      await s.blobs.discard(partial);
      await s.blobs.discard(whole);
      await s.blobs.discard(whole); // absent already: nothing happens
      expect((await s.stored(partial)).length).toBe(0);
      expect((await s.stored(whole)).length).toBe(0);
      const left: string[] = [];
      for await (const e of s.blobs.list()) left.push(e.id);
      expect(left).toEqual([]);
    });

    it('removes a blob; removing it again changes nothing', async () => {
      const key = id();
      await s.blobs.put(key, pieces(randomBytes(1000)), { maxBytes: 1000 });
      await s.blobs.remove(key, 1000);
      await expect(readAll(s.blobs, key, 1000)).rejects.toThrow();
      await s.blobs.remove(key, 1000);
    });
  });
}
