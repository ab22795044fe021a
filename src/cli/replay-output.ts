import { open } from 'node:fs/promises';
import { ReplayInterrupted, type ReplayPage } from '../client/dip-client.js';
import { shellWord } from './shell-word.js';
import { privateWriteStream } from './private-output.js';

/** Where `dip replay` writes: the messages (stdout) and what it says about them (stderr). */
export interface ReplayOutput {
  /** Resolves once the text may be written again (stdout's back-pressure), so a slow reader bounds memory. */
  out(text: string): Promise<void>;
  err(text: string): void;
}

/** The replay as a command that resumes it would repeat it: the filter must be the same for the token to continue it. */
export interface ReplayCommandLine {
  as: string;
  channel: string;
  from: string;
  to: string;
  eventCode?: string;
  mpan?: string;
  transactionId: string[];
  /** --out: the file the array is written to (a resumed run appends into it). */
  out?: string;
}

/** A message as the single-answer output printed it (JSON.stringify(array, null, 2)): two more spaces deep. */
function indented(message: unknown): string {
  return `  ${JSON.stringify(message, null, 2).replaceAll('\n', '\n  ')}`;
}

/** Printed to be pasted into a shell: a folder with a space (`--as`) or a time with `+` stays one word. */
function resumeCommand(c: ReplayCommandLine, resumeFrom: string | undefined): string {
  const parts: Array<[string, string]> = [['--as', c.as], ['--channel', c.channel], ['--from', c.from], ['--to', c.to]];
  if (c.eventCode !== undefined) parts.push(['--event-code', c.eventCode]);
  if (c.mpan !== undefined) parts.push(['--mpan', c.mpan]);
  for (const id of c.transactionId) parts.push(['--transaction-id', id]);
  if (c.out !== undefined) parts.push(['--out', c.out]);
  if (resumeFrom !== undefined) parts.push(['--continue', resumeFrom]);
  return ['dip replay', ...parts.map(([flag, value]) => `${flag} ${shellWord(value)}`)].join(' ');
}

/** How the array a replay writes ends: after messages, and with none. */
const CLOSE = '\n]\n';
const EMPTY = '[]\n';

/**
 * --out FILE: the replay's output file. A first run writes it anew. A resumed run (--continue) appends
 * into the array already there, so an interrupted replay and its resumption leave one JSON array, as one
 * uninterrupted run does: what a participant's program reads expects one array, not two in a row. The
 * file must end as `dip replay` leaves its array (on stdout or in a file); its closing bracket is taken
 * off and put back after the rest. `appending` says whether messages are already in it.
 */
export async function replayFile(path: string, opts: { resume: boolean }): Promise<{ output: ReplayOutput & { close(): Promise<void> }; appending: boolean }> {
  let appending = false;
  let keep = 0;
  let exists = false;
  if (opts.resume) {
    const existing = await open(path, 'r').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)));
    if (existing !== null) {
      exists = true;
      try {
        // Only the end is read: a replay's file can be far larger than memory.
        const { size } = await existing.stat();
        const tail = Buffer.alloc(Math.min(size, CLOSE.length));
        await existing.read(tail, 0, tail.length, size - tail.length);
        const end = tail.toString('utf8');
        if (size > EMPTY.length && end === CLOSE) {
          appending = true;
          keep = size - CLOSE.length;
        } else if (!(size === EMPTY.length && end === EMPTY)) {
          throw new Error(`${path} does not end as dip replay leaves its JSON array ("${CLOSE.trim()}" on a line of its own): give --out a new file, or the one the interrupted replay wrote`);
        }
      } finally {
        await existing.close();
      }
    }
  }
  // Written from where the closing bracket (or the empty array) starts: the first text written covers it
  // (`,` and a message; or the bracket again when nothing came), so until then the file stays the valid
  // array it was, even if this run is killed before its first page arrives.
  const stream = exists ? privateWriteStream(path, { flags: 'r+', start: keep }) : privateWriteStream(path);
  const failed = new Promise<never>((_, reject) => stream.once('error', reject));
  failed.catch(() => undefined);
  return {
    appending,
    output: {
      out: (text) => Promise.race([failed, new Promise<void>((resolve) => (stream.write(text) ? resolve() : stream.once('drain', resolve)))]),
      err: (text) => process.stderr.write(text),
      close: () => Promise.race([failed, new Promise<void>((resolve) => stream.end(resolve))]),
    },
  };
}

/**
 * Writes every page of a replay as one JSON array, a page at a time (the same text the single answer
 * printed before pages were followed), and says on stderr how many pages and messages it fetched.
 * Answers the exit code. A page refused or not answered midway closes the array (what was written stays
 * valid JSON), and stderr says how many messages were written and the command, with --continue, that
 * fetches the rest (with --out, into the same array). When the very first page is refused, its answer is
 * printed as every other command prints a refusal. `appending`: the output already holds the start of an
 * array with messages in it (replayFile of a resumed run), which this run continues.
 */
export async function writeReplay(pages: AsyncIterable<ReplayPage>, io: ReplayOutput, command: ReplayCommandLine, appending = false): Promise<number> {
  let fetched = 0;
  let written = 0;
  const close = () => io.out(written > 0 || appending ? CLOSE : EMPTY);
  const toFile = command.out !== undefined || appending;
  try {
    for await (const page of pages) {
      fetched += 1;
      for (const message of page.messages) {
        await io.out(`${written === 0 && !appending ? '[\n' : ',\n'}${indented(message)}`);
        written += 1;
      }
    }
  } catch (err) {
    // A file (--out) is left a whole JSON array whatever went wrong: one appended to was one before this run.
    if (!(err instanceof ReplayInterrupted) || (fetched === 0 && err.answer === undefined)) {
      if (toFile) await close().catch(() => undefined);
      throw err;
    }
    if (fetched === 0) {
      // The first page refused: the refusal is printed where the person running the command reads it.
      const refusal = err.answer!;
      if (toFile) {
        await close();
        io.err(`${refusal.body === null ? '' : `${JSON.stringify(refusal.body, null, 2)}\n`}DIP answered ${refusal.status}\n`);
        return 1;
      }
      if (refusal.body !== null) await io.out(`${JSON.stringify(refusal.body, null, 2)}\n`);
      io.err(`DIP answered ${refusal.status}\n`);
      return 1;
    }
    await close();
    const help = helpOf(err.answer?.body);
    // Without --out the rest would be a second array after the first: say how to get one array instead.
    const where =
      command.out === undefined
        ? '(add --out FILE, FILE being where this output went, to append the rest into its array; without it the rest is an array of its own)'
        : `(it appends them into the array in ${command.out})`;
    io.err(
      `replay interrupted: ${err.message}${help ? ` (${help})` : ''} after ${fetched} page(s); ${written} message(s) were written.\n` +
        `the rest: ${resumeCommand(command, err.continuation)}\n${where}\n`,
    );
    return 1;
  }
  await close();
  io.err(`replay: ${written} message(s) in ${fetched} page(s)${appending ? `, appended to the array in ${command.out ?? 'the output'}` : ''}\n`);
  return 0;
}

/** The help text of a StandardResponse answer, if the refusal carried one. */
function helpOf(body: unknown): string | undefined {
  const entry = (body as { messageArray?: Array<{ help?: unknown }> } | null)?.messageArray?.[0];
  return typeof entry?.help === 'string' ? entry.help : undefined;
}
