import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Writable } from 'node:stream';
import type { KeyEncryptionKey } from '../security/at-rest.js';
import { ExportMac, exportMacKey } from '../security/export-mac.js';
import type { MigrationRecord } from './migration.js';

/**
 * The export's last line: an HMAC-SHA-256 over every line before it, as written (src/security/export-mac.ts).
 * A trailer keeps the file one stream: the exporter writes it after the last record, with nothing held back.
 * keyId names the data key (the file's first record) the MAC key is derived from; records, how many lines it covers;
 * exportedAt and source say when and from which store the file was made, so an older export of the same
 * deployment is told from the latest (the MAC alone would pass either): both are under the MAC (signedFields).
 */
export interface ExportTrailer {
  type: 'exportMac';
  alg: 'HMAC-SHA-256';
  keyId: number;
  records: number;
  exportedAt: string;
  source: string;
  mac: string;
}

/**
 * The trailer's fields the MAC covers after the records, as one line in a fixed key order: rebuilt from the
 * parsed trailer by the importer, so a date or source written into another export's trailer does not match.
 */
const signedFields = (t: Pick<ExportTrailer, 'alg' | 'keyId' | 'records' | 'exportedAt' | 'source'>): string =>
  JSON.stringify({ alg: t.alg, keyId: t.keyId, records: t.records, exportedAt: t.exportedAt, source: t.source });

export interface WriteExportOptions {
  /** The store exported, as the operator knows it (the CLI: host name and database file): shown on import. */
  source: string;
  now: () => number;
  /** The CLI passes its own opener, which also tightens a file that already existed (src/cli/private-output.ts). */
  openOut?: (file: string) => Writable;
}

/** How a trailer line begins: JSON.stringify keeps the key order it is built in (writeExport). */
const TRAILER_PREFIX = '{"type":"exportMac"';

async function macKeyOf(first: MigrationRecord | undefined, kek: KeyEncryptionKey): Promise<{ id: number; key: Buffer }> {
  if (first?.type !== 'dataKey') throw new Error('the export does not begin with a data key: there is no key to authenticate it with (a store no DIP has started on has nothing to move)');
  return { id: first.id, key: exportMacKey(await kek.unwrap(Buffer.from(first.wrapped, 'base64'))) };
}

/**
 * Writes an export (`dip migrate export`): one JSON record a line, then the trailer. File mode 0600: it
 * holds API key hashes and sealed payloads.
 */
export async function writeExport(
  file: string,
  records: Iterable<MigrationRecord>,
  kek: KeyEncryptionKey,
  options: WriteExportOptions,
): Promise<void> {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's --out
  const out = (options.openOut ?? ((f: string) => createWriteStream(f, { mode: 0o600 })))(file);
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => undefined);
  const write = async (line: string) => {
    if (!out.write(`${line}\n`)) await Promise.race([new Promise<void>((r) => out.once('drain', () => r())), failed]);
  };
  try {
    let mac: ExportMac | undefined;
    let keyId = 0;
    let n = 0;
    for (const record of records) {
      if (!mac) {
        const { id, key } = await macKeyOf(record, kek);
        mac = new ExportMac(key);
        keyId = id;
      }
      const line = JSON.stringify(record);
      mac.line(line);
      n += 1;
      await write(line);
    }
    if (!mac) await macKeyOf(undefined, kek);
    const signed = { alg: 'HMAC-SHA-256', keyId, records: n, exportedAt: new Date(options.now()).toISOString(), source: options.source } as const;
    mac!.line(signedFields(signed));
    const trailer: ExportTrailer = { type: 'exportMac', ...signed, mac: mac!.digest() };
    await write(JSON.stringify(trailer));
  } finally {
    await Promise.race([new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r()))), failed]);
  }
}

export interface ReadExportOptions {
  /** The importing DIP's key-encryption key: it must be the exporting DIP's (its data keys unwrap under it). */
  kek: KeyEncryptionKey;
  /** Import a file with no MAC (written by a build before exports carried one): the operator's explicit choice. */
  acceptUnauthenticated?: boolean;
  /** Where the private copy of the checked bytes is kept while the import runs (default: os.tmpdir()). */
  tmpDir?: string;
}

/**
 * An export whose MAC was checked (or whose lack of one the operator accepted). Its records are read from a
 * private copy of exactly the bytes that were checked, never from the file again: a file changed in place
 * after the check cannot bring anything into the import.
 */
export interface CheckedExport {
  authenticated: boolean;
  /** When and from which store the export was made (its trailer, under the MAC); null for an unauthenticated file. */
  exportedAt: string | null;
  source: string | null;
  records(): AsyncGenerator<MigrationRecord>;
  /** Removes the private copy: call it whatever became of the import. */
  close(): Promise<void>;
}

function lines(input: Readable): AsyncIterable<string> {
  return createInterface({ input, crlfDelay: Infinity });
}

/** Lines written to the private copy in chunks of about this size: one write a line would crawl on a large export. */
const COPY_CHUNK_BYTES = 1 << 20;

/**
 * Reads an export through once and checks its MAC before anything is written (`dip migrate import`):
 * a record added, removed, reordered or changed, a trailer from another file, or a file made by a DIP with
 * other keys is refused, naming what failed. A file with no trailer is refused unless acceptUnauthenticated.
 */
export async function checkExport(file: string, options: ReadExportOptions): Promise<CheckedExport> {
  // A directory of our own (mkdtemp: 0700, an unguessable name) holding a 0600 file opened exclusively.
  const copyDir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'opendip-import-'));
  const remove = () => rm(copyDir, { recursive: true, force: true });
  const copyFile = join(copyDir, 'checked.jsonl');
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's --in
    const input = await open(file, 'r');
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- in our own mkdtemp directory
    const copy = await open(copyFile, 'wx', 0o600);
    const pass = newPass();
    try {
      // Each line is MACed and copied as read: the copy is, byte for byte, what the MAC was checked over.
      let pending: string[] = [];
      let size = 0;
      const flush = async () => {
        if (pending.length > 0) await copy.write(pending.join(''));
        pending = [];
        size = 0;
      };
      for await (const line of scan(lines(input.createReadStream({ encoding: 'utf8' })), options.kek, pass)) {
        pending.push(`${line}\n`);
        size += line.length + 1;
        if (size >= COPY_CHUNK_BYTES) await flush();
      }
      await flush();
    } finally {
      await Promise.allSettled([input.close(), copy.close()]);
    }
    const refused = `${file} is refused, nothing imported`;
    if (pass.trailer === null) {
      if (options.acceptUnauthenticated !== true) {
        throw new Error(`${refused}: it carries no MAC (its last line is not an exportMac trailer: cut short or edited, or written by a build before exports were authenticated). Export it again with this build. --accept-unauthenticated bypasses the integrity check: it is only for exports written by builds before exports were authenticated`);
      }
    } else {
      const t = pass.trailer;
      if (pass.trailerLine !== pass.lines) throw new Error(`${refused}: ${pass.lines - pass.trailerLine} line(s) follow its MAC trailer (line ${pass.trailerLine})`);
      if (pass.keyError !== null) throw new Error(`${refused}: its MAC key cannot be derived: ${pass.keyError}. The importing DIP needs the exporting DIP's key-encryption key (keys/kek.key or the same KMS key)`);
      pass.mac?.line(signedFields(t));
      if (t.alg !== 'HMAC-SHA-256' || t.keyId !== pass.keyId || t.records !== pass.trailerLine - 1 || typeof t.exportedAt !== 'string' || typeof t.source !== 'string' || !pass.mac!.matches(t.mac)) {
        throw new Error(`${refused}: its MAC (HMAC-SHA-256 over its ${pass.trailerLine - 1} records, when and where it was made, key derived from data key ${pass.keyId ?? '?'}) does not match: the file was changed after it was written, or was written by a DIP with other keys`);
      }
    }
    return {
      authenticated: pass.trailer !== null,
      exportedAt: pass.trailer?.exportedAt ?? null,
      source: pass.trailer?.source ?? null,
      async *records() {
        // eslint-disable-next-line security/detect-non-literal-fs-filename -- our private copy
        for await (const line of lines(createReadStream(copyFile, { encoding: 'utf8' }))) {
          if (line.startsWith(TRAILER_PREFIX)) return;
          if (line.trim()) yield JSON.parse(line) as MigrationRecord;
        }
      },
      close: remove,
    };
  } catch (err) {
    await remove();
    throw err;
  }
}

interface MacPass {
  lines: number;
  trailerLine: number;
  trailer: ExportTrailer | null;
  keyId: number | null;
  keyError: string | null;
  mac: ExportMac | null;
}

const newPass = (): MacPass => ({ lines: 0, trailerLine: 0, trailer: null, keyId: null, keyError: null, mac: null });

/**
 * The checking pass: each line MACed as the exporter did, the trailer found (the trailer's own fields are
 * added to the MAC by checkExport, once the trailer is known). Passes every line on, for the private copy.
 */
async function* scan(input: AsyncIterable<string>, kek: KeyEncryptionKey, state: MacPass): AsyncGenerator<string> {
  for await (const line of input) {
    state.lines += 1;
    yield line;
    if (state.trailer !== null) continue;
    if (line.startsWith(TRAILER_PREFIX)) {
      state.trailer = JSON.parse(line) as ExportTrailer;
      state.trailerLine = state.lines;
      continue;
    }
    if (state.lines === 1) {
      try {
        const { id, key } = await macKeyOf(JSON.parse(line) as MigrationRecord, kek);
        state.keyId = id;
        state.mac = new ExportMac(key);
      } catch (err) {
        state.keyError = err instanceof Error ? err.message : String(err);
      }
    }
    state.mac?.line(line);
  }
}
