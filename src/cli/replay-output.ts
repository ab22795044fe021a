import { ReplayInterrupted, type ReplayPage } from '../client/dip-client.js';

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
}

/** A message as the single-answer output printed it (JSON.stringify(array, null, 2)): two more spaces deep. */
function indented(message: unknown): string {
  return `  ${JSON.stringify(message, null, 2).replaceAll('\n', '\n  ')}`;
}

/** A word as a POSIX shell reads it back unchanged: bare when it is plainly safe, else in single quotes. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** Printed to be pasted into a shell: a folder with a space (`--as`) or a time with `+` stays one word. */
function resumeCommand(c: ReplayCommandLine, resumeFrom: string | undefined): string {
  const parts: Array<[string, string]> = [['--as', c.as], ['--channel', c.channel], ['--from', c.from], ['--to', c.to]];
  if (c.eventCode !== undefined) parts.push(['--event-code', c.eventCode]);
  if (c.mpan !== undefined) parts.push(['--mpan', c.mpan]);
  for (const id of c.transactionId) parts.push(['--transaction-id', id]);
  if (resumeFrom !== undefined) parts.push(['--continue', resumeFrom]);
  return ['dip replay', ...parts.map(([flag, value]) => `${flag} ${shellWord(value)}`)].join(' ');
}

/**
 * Writes every page of a replay as one JSON array, a page at a time (the same text the single answer
 * printed before pages were followed), and says on stderr how many pages and messages it fetched.
 * Answers the exit code. A page refused or not answered midway closes the array (what was written stays
 * valid JSON), and stderr says how many messages were written and the command, with --continue, that
 * fetches the rest. When the very first page is refused, its answer is printed as every other command
 * prints a refusal.
 */
export async function writeReplay(pages: AsyncIterable<ReplayPage>, io: ReplayOutput, command: ReplayCommandLine): Promise<number> {
  let fetched = 0;
  let written = 0;
  try {
    for await (const page of pages) {
      fetched += 1;
      for (const message of page.messages) {
        await io.out(`${written === 0 ? '[\n' : ',\n'}${indented(message)}`);
        written += 1;
      }
    }
  } catch (err) {
    if (!(err instanceof ReplayInterrupted)) throw err;
    if (fetched === 0) {
      if (err.answer === undefined) throw err;
      if (err.answer.body !== null) await io.out(`${JSON.stringify(err.answer.body, null, 2)}\n`);
      io.err(`DIP answered ${err.answer.status}\n`);
      return 1;
    }
    await io.out(written === 0 ? '[]\n' : '\n]\n');
    const help = helpOf(err.answer?.body);
    io.err(
      `replay interrupted: ${err.message}${help ? ` (${help})` : ''} after ${fetched} page(s); ${written} message(s) were written.\n` +
        `the rest: ${resumeCommand(command, err.continuation)}\n`,
    );
    return 1;
  }
  await io.out(written === 0 ? '[]\n' : '\n]\n');
  io.err(`replay: ${written} message(s) in ${fetched} page(s)\n`);
  return 0;
}

/** The help text of a StandardResponse answer, if the refusal carried one. */
function helpOf(body: unknown): string | undefined {
  const entry = (body as { messageArray?: Array<{ help?: unknown }> } | null)?.messageArray?.[0];
  return typeof entry?.help === 'string' ? entry.help : undefined;
}
