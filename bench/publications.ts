/**
 * Pattern B throughput: a publication of each size is uploaded to a real DIP (in this process, embedded
 * storage, over mutual TLS) and downloaded whole, and both are set against the disk's own sequential
 * write and read speed measured in the same run on the same filesystem:
 *   raw write: the same number of bytes written in 1 MiB writes, then fdatasync (dd … conv=fdatasync);
 *   raw read:  that file read back in 1 MiB reads. Dropping the page cache needs privileges a benchmark
 *              should not use on a shared machine, so this is a read from the page cache where the file
 *              fits, the ceiling for the DIP's own reads, which meet the same cache.
 * The DIP's upload includes TLS, SHA-256, sealing (AES-256-GCM per 1 MiB chunk), the write and its
 * fdatasync, the metadata commit and the notice; its download includes reading, opening the chunks and TLS.
 * Run alone: `npx tsx bench/publications.ts [--sizes 100,1024]` (MiB); `npm run bench -- --only publications`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startDip } from '../src/app.js';
import { DipClient } from '../src/client/dip-client.js';
import { loadConfig } from '../src/config.js';
import { onboardParticipant } from '../src/pipeline/participants.js';
import { issueParticipantCertificate } from '../src/security/pki.js';

const MiB = 1024 * 1024;
const quiet = { info() {}, warn() {}, error() {} };

export interface PublicationThroughput {
  sizeMiB: number;
  rawWriteMBps: number;
  rawReadMBps: number;
  uploadMBps: number;
  downloadMBps: number;
  uploadRatio: number;
  downloadRatio: number;
}

const mbps = (bytes: number, ms: number): number => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;

/** Writes `bytes` of incompressible data in 1 MiB writes and syncs it: the disk's sequential write speed. */
async function rawWrite(file: string, bytes: number, block: Buffer): Promise<number> {
  const started = performance.now();
  const fh = await open(file, 'w');
  for (let done = 0; done < bytes; done += block.length) await fh.write(block, 0, Math.min(block.length, bytes - done));
  await fh.datasync();
  await fh.close();
  return mbps(bytes, performance.now() - started);
}

async function rawRead(file: string, bytes: number): Promise<number> {
  const started = performance.now();
  const fh = await open(file, 'r');
  const buf = Buffer.allocUnsafe(MiB);
  for (let pos = 0; pos < bytes; ) pos += (await fh.read(buf, 0, MiB, pos)).bytesRead || bytes;
  await fh.close();
  return mbps(bytes, performance.now() - started);
}

/** The payload to publish, and its SHA-256 (what the publisher signs): written once, read by the upload. */
async function payload(file: string, bytes: number, block: Buffer): Promise<string> {
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  for (let done = 0; done < bytes; done += block.length) {
    const piece = block.subarray(0, Math.min(block.length, bytes - done));
    hash.update(piece);
    if (!out.write(piece)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return hash.digest('base64');
}

export async function publicationsBench(sizesMiB: number[], log: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<PublicationThroughput[]> {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-bench-pub-'));
  const config = loadConfig({}, { dataDir: join(dir, 'dip'), port: 0, adminPort: 0, host: '127.0.0.1', warmCatalogue: false });
  const dip = await startDip(config, quiet);
  const block = randomBytes(MiB);
  const results: PublicationThroughput[] = [];
  try {
    const credentials = await issueParticipantCertificate(dip.pki.ca, { organisation: 'Bench VAS', dipIds: ['VAS0000001'], environment: config.environment, validDays: 2 });
    const { apiKey } = await onboardParticipant(dip.backend.registry, { dipId: 'VAS0000001', roles: ['VAS'], certificatePem: credentials.certPem });
    const client = new DipClient({ baseUrl: dip.url, apiKey, keyPem: credentials.keyPem, certPem: credentials.certPem, caPem: dip.pki.ca.certPem });
    for (const [i, sizeMiB] of sizesMiB.entries()) {
      const bytes = sizeMiB * MiB;
      // Raw limits on the filesystem the DIP writes to (its data directory).
      const rawFile = join(dir, 'dip', 'raw.bin');
      const rawWriteMBps = await rawWrite(rawFile, bytes, block);
      const rawReadMBps = await rawRead(rawFile, bytes);
      rmSync(rawFile);
      const input = join(dir, 'payload.bin');
      const sha256 = await payload(input, bytes, block);

      let started = performance.now();
      const answer = await client.publish('REP-003', { type: 'Bench', version: String(i + 1), format: 'bin' }, createReadStream(input, { highWaterMark: MiB }), sha256, bytes);
      const uploadMs = performance.now() - started;
      if (answer.status !== 201) throw new Error(`publish answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      rmSync(input);
      const id = answer.headers['x-opendip-publication-id']!;

      started = performance.now();
      const download = await client.download(`/dip-channel/REP-003/publications/${id}/content`);
      const hash = createHash('sha256');
      let received = 0;
      for await (const piece of download.body) {
        hash.update(piece as Buffer);
        received += (piece as Buffer).length;
      }
      const downloadMs = performance.now() - started;
      if (received !== bytes || hash.digest('base64') !== sha256) throw new Error(`download of ${sizeMiB} MiB came back as ${received} bytes with another hash`);

      const r: PublicationThroughput = {
        sizeMiB,
        rawWriteMBps,
        rawReadMBps,
        uploadMBps: mbps(bytes, uploadMs),
        downloadMBps: mbps(bytes, downloadMs),
        uploadRatio: 0,
        downloadRatio: 0,
      };
      r.uploadRatio = Math.round((r.uploadMBps / r.rawWriteMBps) * 100) / 100;
      r.downloadRatio = Math.round((r.downloadMBps / r.rawReadMBps) * 100) / 100;
      results.push(r);
      log(`publications: ${sizeMiB} MiB upload ${r.uploadMBps} MB/s (${r.uploadRatio} × raw write ${rawWriteMBps} MB/s), download ${r.downloadMBps} MB/s (${r.downloadRatio} × raw read ${rawReadMBps} MB/s)`);
    }
    await client.close();
  } finally {
    await dip.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

export function publicationsTable(results: PublicationThroughput[]): string {
  const rows = results.map(
    (r) => `| ${r.sizeMiB} MiB | ${r.rawWriteMBps} | ${r.uploadMBps} | **${r.uploadRatio}** | ${r.rawReadMBps} | ${r.downloadMBps} | **${r.downloadRatio}** |`,
  );
  return ['| publication | raw write MB/s | upload MB/s | upload ÷ raw write | raw read MB/s | download MB/s | download ÷ raw read |', '| --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const at = process.argv.indexOf('--sizes');
  const sizes = at > 0 ? (process.argv[at + 1] ?? '').split(',').map(Number) : [100, 1024];
  publicationsBench(sizes)
    .then((r) => process.stdout.write(`\n${publicationsTable(r)}\n`))
    .catch((e: unknown) => {
      process.stderr.write(`${String(e)}\n`);
      process.exit(1);
    });
}
