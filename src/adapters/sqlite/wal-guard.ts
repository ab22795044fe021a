import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';

/**
 * Committed transactions a SQLite file's WAL no longer holds: what its wal-index (-shm) said the WAL held
 * when the last process using it stopped, against what the WAL file holds now.
 */
export interface WalLoss {
  file: string;
  /** Frames the wal-index said were committed (mxFrame). */
  expectedFrames: number;
  /** Of those, how many were already copied into the database file (nBackfill): not lost with the WAL. */
  backfilledFrames: number;
  /** Valid committed frames found in the WAL now, of the same generation (salts) as the wal-index's. */
  foundFrames: number;
  why: 'missing' | 'other-generation' | 'short';
}

/** The error a start refused for a WAL that lost committed transactions throws (names the file and what to do). */
export class WalLossError extends Error {
  constructor(readonly loss: WalLoss) {
    super(describeWalLoss(loss, 'refused'));
    this.name = 'WalLossError';
  }
}

const WHY: Record<WalLoss['why'], string> = {
  missing: 'is missing',
  'other-generation': 'belongs to another generation (its salts differ from the wal-index)',
  short: 'holds fewer valid frames than were committed (damaged or truncated)',
};

/**
 * What the lost frames held, as the message says it: dip.db's are messages already acknowledged (a start
 * would hand their queue positions out again, so it is refused); activity.db's are API activity records
 * (the audit evidence of requests already answered: gone either way, so the start goes on and says so).
 */
export type WalHolds = 'messages' | 'activity' | 'alarms';

const HOLDS: Record<WalHolds, string> = {
  messages: 'messages already acknowledged 201, queue positions handed out',
  activity: 'API activity records, audit evidence of requests already answered',
  alarms: 'alarm subscriptions put or removed lately, and the alarms already announced',
};

export function describeWalLoss(l: WalLoss, outcome: 'refused' | 'accepted', holds: WalHolds = 'messages'): string {
  const lost = l.expectedFrames - Math.max(l.backfilledFrames, l.foundFrames);
  const what =
    `the write-ahead log ${l.file}-wal ${WHY[l.why]}: its wal-index (${l.file}-shm) says ${l.expectedFrames} frames were committed ` +
    `(${l.backfilledFrames} already in the database file), the WAL holds ${l.foundFrames} valid frames, so ${lost} frames of committed ` +
    `transactions (${HOLDS[holds]}) are lost`;
  if (outcome === 'refused')
    return `${what}. Refusing to start: a start would hand those queue positions to new messages. Restore the data folder from a backup ` +
      `(docs/disaster-recovery.md), or, to accept the loss, start once with "dip serve --accept-wal-loss" (README "Operating the DIP").`;
  if (holds === 'messages') return `${what}. Started anyway (--accept-wal-loss): recipients that drop repeats by position may discard new messages at the lost positions.`;
  if (holds === 'alarms')
    return `${what}. Started anyway (a loss of alarm settings is reported, never refused: a refusal would stop the messages for what their owners can put again): ` +
      `check the subscriptions (GET /admin/alarms/subscriptions) and ask their owners to put lost ones again; alarms already announced may be announced again.`;
  return `${what}. Started anyway (an activity loss is reported, never refused: nothing a start does can bring the records back, and this process writes a chain of its own): ` +
    `the chains of the process that crashed end earlier than they did, and dip audit verify cannot see it but for this note (README "API activity log").`;
}

/** The wal-index header (WalIndexHdr, https://www.sqlite.org/walformat.html): both copies, each 48 bytes, and nBackfill after them. */
const HDR = 48;
const WAL_VERSION = 3007000;
const WAL_HEADER = 32;
const FRAME_HEADER = 24;

/**
 * What the wal-index (-shm) says about the WAL: frames committed (mxFrame), how many of them are in the
 * database file (nBackfill), and the WAL's salts. Null when there is nothing to trust: no -shm, a header
 * never initialised, its two copies differing (caught mid-update), or its checksum wrong.
 */
export function readWalIndex(file: string): { mxFrame: number; backfilled: number; salt: Buffer } | null {
  const header = readPrefix(`${file}-shm`, 2 * HDR + 4);
  if (!header || header.length < 2 * HDR + 4) return null;
  const le = endianness() === 'LE';
  const u32 = (at: number) => (le ? header.readUInt32LE(at) : header.readUInt32BE(at));
  const first = header.subarray(0, HDR);
  if (!first.equals(header.subarray(HDR, 2 * HDR))) return null;
  if (u32(0) !== WAL_VERSION || first[12] !== 1) return null;
  // The header's own checksum: over its first 40 bytes, in native byte order (walIndexTryHdr).
  const [s1, s2] = checksum(first.subarray(0, 40), le, 0, 0);
  if (s1 !== u32(40) || s2 !== u32(44)) return null;
  return { mxFrame: u32(16), backfilled: u32(2 * HDR), salt: Buffer.from(first.subarray(32, 40)) };
}

/**
 * The WAL's salts and how many of its frames SQLite's recovery would keep: frames whose salts are the
 * header's and whose cumulative checksum holds, up to the last commit frame among them (the walformat
 * page's rules). Null when the file is missing or its header is not a valid WAL header.
 */
export function scanWal(file: string): { salt: Buffer; frames: number } | null {
  const path = `${file}-wal`;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the WAL beside the store's file
  if (!existsSync(path)) return null;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the WAL beside the store's file
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(WAL_HEADER);
    if (size < WAL_HEADER || readSync(fd, head, 0, WAL_HEADER, 0) < WAL_HEADER) return null;
    const magic = head.readUInt32BE(0);
    if ((magic & 0xfffffffe) !== 0x377f0682) return null;
    const bigEndian = (magic & 1) === 1;
    const pageSize = head.readUInt32BE(8) === 1 ? 65536 : head.readUInt32BE(8);
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return null;
    let [s1, s2] = checksum(head.subarray(0, 24), !bigEndian, 0, 0);
    if (s1 !== head.readUInt32BE(24) || s2 !== head.readUInt32BE(28)) return null;
    const salt = Buffer.from(head.subarray(16, 24));
    const frame = Buffer.alloc(FRAME_HEADER + pageSize);
    let frames = 0;
    for (let n = 1, at = WAL_HEADER; at + frame.length <= size; n++, at += frame.length) {
      if (readSync(fd, frame, 0, frame.length, at) < frame.length) break;
      if (!frame.subarray(8, 16).equals(salt)) break;
      [s1, s2] = checksum(frame.subarray(0, 8), !bigEndian, s1, s2);
      [s1, s2] = checksum(frame.subarray(FRAME_HEADER), !bigEndian, s1, s2);
      if (s1 !== frame.readUInt32BE(16) || s2 !== frame.readUInt32BE(20)) break;
      if (frame.readUInt32BE(4) !== 0) frames = n;
    }
    return { salt, frames };
  } finally {
    closeSync(fd);
  }
}

/** This boot of the machine, or null where it cannot be told. Injected (SqliteOptions.bootId) so that tests reboot nothing. */
export type BootId = () => string | null;

/** Linux's ID of this boot (new at every boot, the same for every process until the next); null elsewhere. */
export const systemBootId: BootId = () => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
};

/** Beside the file: the boot in which its -shm was last made (markBoot). */
const bootMark = (file: string): string => `${file}-boot`;

/**
 * Records the boot the file is opened in, beside it (`dip.db-boot`), synced: the next start compares it
 * with its own (walLoss). Called by the first opener once the guard let it through; nothing where there
 * is no boot ID. A mark whose directory entry a power cut lost is just missing: the guard then applies.
 */
export function markBoot(file: string, bootId: BootId): void {
  const id = file === ':memory:' ? null : bootId();
  if (id === null) return;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the mark beside the store's file
  const fd = openSync(bootMark(file), 'w', 0o600);
  try {
    writeSync(fd, id);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the -shm beside `file` was written in an earlier boot than this one: then it lived only in the
 * page cache of a machine that went down, and what reached the disk of it is not the last state its writer
 * saw. False when the mark says this boot, and when nothing can be told (no mark, no boot ID).
 */
function shmFromEarlierBoot(file: string, bootId: BootId): boolean {
  const now = bootId();
  const mark = readPrefix(bootMark(file), 64)?.toString('utf8');
  return now !== null && mark !== undefined && mark !== '' && mark !== now;
}

/**
 * Whether the WAL lost committed transactions since the last process that wrote the file stopped. Must
 * run before any connection opens the file: the first connection rebuilds the wal-index from whatever the
 * WAL holds now, and the evidence is gone.
 *
 * Why the wal-index can be trusted here, and when it cannot. A clean close checkpoints and deletes both
 * -wal and -shm (nothing to compare). After a kill -9 (or a crash of the process alone) the -shm's pages,
 * written through a shared mapping, are in the kernel's page cache exactly as the process left them, and
 * so are the WAL's frames: the two agree unless someone deleted, replaced or damaged the WAL. After a power
 * loss the -shm (never synced) may hold an older state than the WAL (harmless) or, if the kernel wrote it
 * back between a group's commit and its WAL sync, a larger mxFrame than the WAL kept: frames never
 * acknowledged (the writer syncs the WAL before it acknowledges), which the comparison cannot tell from
 * acknowledged ones. So the boot the -shm was made in is kept beside the file (markBoot): a start in
 * another boot (the machine went down: a power loss, or a reboot, which cannot be told apart) does not
 * trust the -shm and does not refuse; a start in the same boot (only the process died) applies the check.
 * Without a boot ID (not Linux) or a mark (made by an earlier version), the check applies as before, and a
 * start after a power loss may be refused once for those unacknowledged frames (the override's case).
 * A WAL started over after the -shm last reached the disk has other salts, but SQLite starts a WAL over
 * only once every frame is in the database file, which is synced first, and adds one to salt-1 when it
 * does: a WAL whose salt-1 follows the -shm's is a later generation and nothing was lost; frames up to
 * nBackfill never count as lost, and an -shm whose frames were all copied back never refuses.
 */
export function walLoss(file: string, bootId: BootId = systemBootId): WalLoss | null {
  if (file === ':memory:') return null;
  const index = readWalIndex(file);
  if (!index || index.mxFrame <= index.backfilled) return null;
  if (shmFromEarlierBoot(file, bootId)) return null;
  const loss = compare(file, index);
  if (!loss) return null;
  // A process that opens the file beside a live writer (the CLI while the DIP runs) may read the wal-index
  // just before a checkpoint finishes and the WAL starts over: a wal-index that changed meanwhile belongs to
  // a live writer, whose WAL is whole. A crash's stays still.
  const again = readWalIndex(file);
  if (!again || again.mxFrame !== index.mxFrame || again.backfilled !== index.backfilled || !again.salt.equals(index.salt)) return null;
  return loss;
}

function compare(file: string, index: { mxFrame: number; backfilled: number; salt: Buffer }): WalLoss | null {
  const wal = scanWal(file);
  const base = { file, expectedFrames: index.mxFrame, backfilledFrames: index.backfilled };
  if (!wal) return { ...base, foundFrames: 0, why: 'missing' };
  if (!wal.salt.equals(index.salt)) {
    // A later generation: the -shm on disk is older than the WAL (never synced: a power loss, a host crash,
    // a crash-consistent snapshot), and the WAL was started over since. SQLite starts a WAL over only once
    // every frame is in the synced database file, and adds one to salt-1 each time (walRestartHdr): nothing
    // of the older generation was lost. Any other salt-1 is a WAL that is not this file's successor.
    if (laterGeneration(index.salt, wal.salt)) return null;
    return { ...base, foundFrames: 0, why: 'other-generation' };
  }
  if (wal.frames < index.mxFrame) return { ...base, foundFrames: wal.frames, why: 'short' };
  return null;
}

/**
 * Whether `wal`'s salt-1 (big-endian, as in the WAL header and copied so into the wal-index) follows
 * `shm`'s by a few restarts. The window is far wider than the restarts a -shm can lag by (its pages reach
 * the disk within the kernel's writeback interval), and narrow enough that a random salt (a WAL of another
 * database put in its place) almost never falls inside it.
 */
function laterGeneration(shm: Buffer, wal: Buffer): boolean {
  const ahead = (wal.readUInt32BE(0) - shm.readUInt32BE(0)) >>> 0;
  return ahead >= 1 && ahead <= MAX_RESTARTS_BEHIND;
}
const MAX_RESTARTS_BEHIND = 65_536;

/** SQLite's WAL checksum (walChecksumBytes): over 32-bit words in pairs, in the byte order given. */
function checksum(data: Buffer, littleEndian: boolean, s1: number, s2: number): [number, number] {
  let a = s1;
  let b = s2;
  for (let i = 0; i + 8 <= data.length; i += 8) {
    const x0 = littleEndian ? data.readUInt32LE(i) : data.readUInt32BE(i);
    const x1 = littleEndian ? data.readUInt32LE(i + 4) : data.readUInt32BE(i + 4);
    a = (a + x0 + b) >>> 0;
    b = (b + x1 + a) >>> 0;
  }
  return [a, b];
}

function readPrefix(path: string, bytes: number): Buffer | null {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- a file beside the store's file
  if (!existsSync(path)) return null;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- a file beside the store's file
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}
