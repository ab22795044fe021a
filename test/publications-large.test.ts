import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * The "Must show" for Pattern B, at size: a generated 200 MB CSV publication is published, 50
 * recipients are notified, one downloads only its GSP group's rows while this process's memory stays flat
 * (sampled, bounded well below the file's size), another resumes a download cut half way and the SHA-256
 * of what it pieced together matches. The DIP runs in this process, so what is sampled is the DIP's memory.
 * Timings are printed, never asserted (BENCHMARKS.md measures throughput).
 */

const SIZE = Number(process.env.PATTERN_B_TEST_MB ?? 200) * 1024 * 1024;
const GROUPS = ['_A', '_B', '_C', '_D', '_E', '_F', '_G', '_H', '_J', '_K', '_L', '_M', '_N', '_P'];
const RECIPIENTS = 50;
/**
 * What the DIP and client retain (after a collection) may grow by chunk buffers, TLS, parser state and
 * the rows in flight, never by anything near the publication: a quarter of its size (64 MB at least, the
 * fixed costs being what they are). Resident memory also holds garbage the collector has not returned,
 * so it is bounded by the file's size: a process that held the file would pass that alone.
 */
const RETAINED_BOUND = Math.max(64 * 1024 * 1024, SIZE / 4);
const RSS_BOUND = Math.max(128 * 1024 * 1024, SIZE);

interface Generated {
  file: string;
  size: number;
  sha256: string;
  rowsOfGroup: Map<string, number>;
}

/** Writes a settlement-style CSV of about `size` bytes, hashing it as it goes (never held in memory). */
async function generateCsv(file: string, size: number): Promise<Generated> {
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  const rowsOfGroup = new Map<string, number>();
  let written = 0;
  let row = 0;
  const write = async (text: string): Promise<void> => {
    const buf = Buffer.from(text);
    hash.update(buf);
    written += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  await write('MPAN,GSPGroupID,SupplierMPID,SettlementDate,Period,ConsumptionKWh\n');
  while (written < size) {
    const lines: string[] = [];
    for (let i = 0; i < 2000; i++, row++) {
      const group = GROUPS[row % GROUPS.length]!;
      rowsOfGroup.set(group, (rowsOfGroup.get(group) ?? 0) + 1);
      lines.push(`${String(1_000_000_000_000 + row)},${group},SUP${row % 97},2026-01-${String((row % 28) + 1).padStart(2, '0')},${(row % 48) + 1},${(row % 1000) / 10}`);
    }
    await write(`${lines.join('\n')}\n`);
  }
  out.end();
  await once(out, 'finish');
  return { file, size: written, sha256: hash.digest('base64'), rowsOfGroup };
}

// A collector this test may call (node's --expose-gc, turned on from inside): retained memory is what
// survives a collection, which garbage between collections would otherwise hide.
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/**
 * Samples this process's memory while `work` runs: the peak growth of its resident set (every 20 ms),
 * and of what its JavaScript retains, V8 heap and Buffers, measured after a forced collection (every second).
 */
async function peakGrowth<T>(work: () => Promise<T>): Promise<{ result: T; rss: number; heap: number }> {
  const retained = (): number => {
    collect();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const startHeap = retained();
  const startRss = process.memoryUsage().rss;
  let rss = startRss;
  let heap = startHeap;
  const rssTimer = setInterval(() => (rss = Math.max(rss, process.memoryUsage().rss)), 20);
  const heapTimer = setInterval(() => (heap = Math.max(heap, retained())), 1000);
  try {
    const result = await work();
    return { result, rss: rss - startRss, heap: heap - startHeap };
  } finally {
    clearInterval(rssTimer);
    clearInterval(heapTimer);
  }
}

const NEWLINE = 0x0a;
const COMMA = 0x2c;
const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

describe(`Pattern B at size: a ${SIZE / 1024 / 1024} MB publication, ${RECIPIENTS} recipients`, () => {
  let t: TestDip;
  let dir: string;
  let vas: TestParticipant;
  let recipients: TestParticipant[];
  let receiver: Awaited<ReturnType<TestDip['receiver']>>;
  let csv: Generated;
  let downloadPath: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'opendip-pattern-b-'));
    t = await startTestDip();
    csv = await generateCsv(join(dir, 'volumes.csv'), SIZE);
    vas = await t.participant('VAS0000001', ['VAS']);
    receiver = await t.receiver();
    // Key generation runs on the thread pool: recipients are made ten at a time.
    recipients = [];
    for (let i = 0; i < RECIPIENTS; i += 10) {
      recipients.push(...(await Promise.all(Array.from({ length: Math.min(10, RECIPIENTS - i) }, (_, k) => t.participant(`SUP${String(i + k).padStart(7, '0')}`, ['SUP'])))));
    }
    for (const p of recipients) expect((await p.client.setWebhook('REP-003', p.dipId, { callbackURL: receiver.url })).status).toBe(201);
  }, 300_000);
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes it streamed (memory flat), and every recipient is notified', async () => {
    const started = Date.now();
    const { result: answer, rss, heap } = await peakGrowth(() =>
      vas.client.publish('REP-003', { type: 'AllocatedVolumes', version: '1', format: 'csv', effectiveFrom: '2026-01-01' }, createReadStream(csv.file, { highWaterMark: 1024 * 1024 }), csv.sha256, csv.size),
    );
    const uploaded = Date.now();
    expect(answer.status).toBe(201);
    const publication = (answer.body as unknown as { publication: { publicationID: string; size: number; sha256: string } }).publication;
    expect(publication.size).toBe(csv.size);
    expect(Buffer.from(publication.sha256, 'hex').toString('base64')).toBe(csv.sha256);
    downloadPath = `/dip-channel/REP-003/publications/${publication.publicationID}/content`;
    // The bytes passed through this process (client and DIP both) without being held: far less than the file.
    expect(rss).toBeLessThan(RSS_BOUND);
    expect(heap).toBeLessThan(RETAINED_BOUND);

    // Each recipient's queue on the channel holds the notice, delivered (acknowledged by its webhook).
    const delivered = async () => (await Promise.all(recipients.map((r) => t.dip.backend.log.queueState({ recipientDipId: r.dipId, channel: 'REP-003' })))).filter((q) => q.ackedSeq === 1).length;
    await waitFor(async () => (await delivered()) === RECIPIENTS, 60_000, 'every recipient notified');
    expect(receiver.calls.length).toBe(RECIPIENTS);
    const notified = Date.now();
    process.stdout.write(`[pattern-b] upload ${mb(csv.size)} in ${uploaded - started} ms (peak growth: RSS ${mb(rss)}, retained heap and buffers ${mb(heap)}); ${RECIPIENTS} recipients notified ${notified - uploaded} ms after the 201\n`);
    for (const call of receiver.calls) {
      const info = JSON.parse((call.messages[0] as Notice).payload.CustomBlock.P02List[0]!.additionalInformation) as { sha256: string; size: number };
      expect(info).toMatchObject({ size: csv.size, sha256: publication.sha256 });
    }
  }, 300_000);

  it("lets a recipient download only its GSP group's rows, streamed with flat memory", async () => {
    const group = '_H';
    const started = Date.now();
    const { result, rss, heap } = await peakGrowth(async () => {
      const answer = await recipients[7]!.client.download(`${downloadPath}?where=GSPGroupID:${group}&columns=MPAN,SettlementDate,Period,ConsumptionKWh`);
      expect(answer.status).toBe(200);
      // Counted on the bytes as they come (no strings per row): what this client makes as garbage is
      // sampled with the DIP's memory, and 200 MB of split strings moved the resident peak by 200 MB.
      let lines = 0;
      let bytes = 0;
      let header = '';
      const headerBytes: number[] = [];
      let commas = 0;
      let wrongGroup = 0;
      for await (const piece of answer.body) {
        for (const c of piece as Buffer) {
          if (c === NEWLINE) {
            if (header === '') header = Buffer.from(headerBytes).toString('utf8');
            else if (commas !== 3) wrongGroup++;
            else lines++;
            commas = 0;
          } else if (header === '') headerBytes.push(c);
          else if (c === COMMA) commas++;
        }
        bytes += (piece as Buffer).length;
      }
      return { lines, bytes, header, wrongGroup };
    });
    process.stdout.write(`[pattern-b] filtered download: ${result.lines} rows of ${group}, ${mb(result.bytes)} out of ${mb(csv.size)} in ${Date.now() - started} ms (peak growth: RSS ${mb(rss)}, retained heap and buffers ${mb(heap)})\n`);
    expect(result.header).toBe('MPAN,SettlementDate,Period,ConsumptionKWh');
    expect(result.wrongGroup).toBe(0);
    expect(result.lines).toBe(csv.rowsOfGroup.get(group));
    expect(rss).toBeLessThan(RSS_BOUND);
    expect(heap).toBeLessThan(RETAINED_BOUND);
  }, 300_000);

  it('lets another recipient resume a download cut half way; the SHA-256 of the pieces matches', async () => {
    const client = recipients[31]!.client;
    const hash = createHash('sha256');
    const first = await client.download(downloadPath);
    expect(first.status).toBe(200);
    const etag = first.headers.etag!;
    let received = 0;
    for await (const piece of first.body) {
      hash.update(piece as Buffer);
      received += (piece as Buffer).length;
      // The connection drops half way: whatever arrived is kept, the rest is asked for again.
      if (received >= csv.size / 2) break;
    }
    first.body.destroy();
    expect(received).toBeLessThan(csv.size);
    const rest = await client.download(downloadPath, { range: `bytes=${received}-`, 'if-range': etag });
    expect(rest.status).toBe(206);
    expect(rest.headers['content-range']).toBe(`bytes ${received}-${csv.size - 1}/${csv.size}`);
    for await (const piece of rest.body) {
      hash.update(piece as Buffer);
      received += (piece as Buffer).length;
    }
    expect(received).toBe(csv.size);
    expect(hash.digest('base64')).toBe(csv.sha256);
  }, 300_000);
});

interface Notice {
  payload: { CustomBlock: { P02List: Array<{ additionalInformation: string }> } };
}
