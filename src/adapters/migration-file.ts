import { createWriteStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import type { KeyEncryptionKey } from '../security/at-rest.js';
import { ExportMac, exportMacKey } from '../security/export-mac.js';
import type { MigrationRecord } from './migration.js';

/**
 * The export's last line: an HMAC-SHA-256 over every line before it, as written (src/security/export-mac.ts).
 * A trailer keeps the file one stream: the exporter writes it after the last record, with nothing held back.
 * keyId names the data key (the file's first record) the MAC key is derived from; records, how many lines it covers.
 */
export interface ExportTrailer {
  type: 'exportMac';
  alg: 'HMAC-SHA-256';
  keyId: number;
  records: number;
  mac: string;
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
  // The CLI passes its own opener, which also tightens a file that already existed (src/cli/private-output.ts).
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's --out
  openOut: (file: string) => Writable = (f) => createWriteStream(f, { mode: 0o600 }),
): Promise<void> {
  const out = openOut(file);
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
    const trailer: ExportTrailer = { type: 'exportMac', alg: 'HMAC-SHA-256', keyId, records: n, mac: mac!.digest() };
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
}

/** An export whose MAC was checked (or whose lack of one the operator accepted); its records read from the same open file. */
export interface CheckedExport {
  authenticated: boolean;
  /** The records, read again: the MAC is checked once more at the end, so a file changed between the passes fails the import. */
  records(): AsyncGenerator<MigrationRecord>;
  close(): Promise<void>;
}

function lines(fh: FileHandle): AsyncIterable<string> {
  return createInterface({ input: fh.createReadStream({ start: 0, autoClose: false, encoding: 'utf8' }), crlfDelay: Infinity });
}

/**
 * Reads an export through once and checks its MAC before anything is written (`dip migrate import`):
 * a record added, removed, reordered or changed, a trailer from another file, or a file made by a DIP with
 * other keys is refused, naming what failed. A file with no trailer is refused unless acceptUnauthenticated.
 */
export async function checkExport(file: string, options: ReadExportOptions): Promise<CheckedExport> {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's --in
  const fh = await open(file, 'r');
  try {
    const pass = newPass();
    for await (const _ of scan(fh, options.kek, pass, false)) void _;
    const refused = `${file} is refused, nothing imported`;
    if (pass.trailer === null) {
      if (options.acceptUnauthenticated !== true) {
        throw new Error(`${refused}: it carries no MAC (its last line is not an exportMac trailer: written by a build before exports were authenticated, or cut short or edited). Export again with this build, or pass --accept-unauthenticated to import it unchecked (the import is journalled as such)`);
      }
    } else {
      if (pass.trailerLine !== pass.lines) throw new Error(`${refused}: ${pass.lines - pass.trailerLine} line(s) follow its MAC trailer (line ${pass.trailerLine})`);
      if (pass.keyError !== null) throw new Error(`${refused}: its MAC key cannot be derived: ${pass.keyError}. The importing DIP needs the exporting DIP's key-encryption key (keys/kek.key or the same KMS key)`);
      if (pass.trailer.alg !== 'HMAC-SHA-256' || pass.trailer.keyId !== pass.keyId || pass.trailer.records !== pass.trailerLine - 1 || !pass.mac!.matches(pass.trailer.mac)) {
        throw new Error(`${refused}: its MAC (HMAC-SHA-256 over its ${pass.trailerLine - 1} records, key derived from data key ${pass.keyId ?? '?'}) does not match: the file was changed after it was written, or was written by a DIP with other keys`);
      }
    }
    const authenticated = pass.trailer !== null;
    return {
      authenticated,
      async *records() {
        const again = newPass();
        yield* scan(fh, options.kek, again, true);
        if (authenticated && !(again.trailer !== null && again.mac !== null && again.mac.matches(again.trailer.mac))) {
          throw new Error(`${file} changed while it was imported: its MAC no longer matches; the target database is incomplete, import again into a new one`);
        }
      },
      close: () => fh.close(),
    };
  } catch (err) {
    await fh.close();
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
 * One read through the file: its MAC computed over each line as the exporter did, the trailer found. Yields
 * the records when `parse` (the import's pass); the checking pass parses only the first line (the data key).
 */
async function* scan(fh: FileHandle, kek: KeyEncryptionKey, state: MacPass, parse: boolean): AsyncGenerator<MigrationRecord> {
  for await (const line of lines(fh)) {
    state.lines += 1;
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
    if (parse && line.trim()) yield JSON.parse(line) as MigrationRecord;
  }
}
