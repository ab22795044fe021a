import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayFile, writeReplay, type ReplayCommandLine } from '../src/cli/replay-output.js';
import { DipClient, ReplayInterrupted, type DipAnswer } from '../src/client/dip-client.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { cliRuns } from './helpers/cli-budget.js';
import { profileDir, runDip } from './helpers/dip-cli.js';

type Json = Record<string, any>;

/**
 * The replay as a participant runs it: `dip replay` and DipClient.replayPages follow every page (206 +
 * X-Continuation-Token) instead of stopping at the first 1,000, and an interrupted replay says how to
 * resume.
 */
const FROM = '2000-01-01T00:00:00+00:00';
const TO = '2100-01-01T00:00:00+00:00';
const FILTER = { datetimeFrom: FROM, datetimeTo: TO };
const TOTAL = 1_050;

/** Collects what `dip replay` writes. */
function capture() {
  const io = { stdout: '', stderr: '' };
  return {
    io,
    output: {
      out: (text: string) => {
        io.stdout += text;
        return Promise.resolve();
      },
      err: (text: string) => {
        io.stderr += text;
      },
    },
  };
}

describe('replaying more than a page', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  const originals: string[] = [];
  const command = (): ReplayCommandLine => ({ as: "sup's dir", channel: 'IF-021', from: FROM, to: TO, transactionId: [] });
  /** The recipient's client whose first page is real and whose later pages are answered by `later`. */
  const clientFailingAfterFirstPage = (later: (continuation: string) => Promise<DipAnswer<unknown>>): DipClient => {
    const client = new DipClient({ baseUrl: t.dip.url, apiKey: sup.apiKey, keyPem: sup.credentials.keyPem, certPem: sup.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    const real = client.replay.bind(client);
    client.replay = (channel, recipient, filter, continuation) => (continuation === undefined ? real(channel, recipient, filter) : later(continuation));
    return client;
  };

  beforeAll(async () => {
    t = await startTestDip({ maxBatchMessages: 1000 });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']); // no webhook: its messages wait in its queue
    for (let b = 0; b < TOTAL / 350; b++) {
      const items = Array.from({ length: 350 }, (_, i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `c${b}x${i}` }));
      const answer = await sds.client.submit('IF-021', items);
      expect(answer.status).toBe(201);
      originals.push(...answer.body.messageArray.map((e) => e.transactionID!));
    }
  }, 120_000);
  afterAll(async () => t?.close());

  it('DipClient.replayPages follows the continuation tokens to the last page', async () => {
    const pages: Json[][] = [];
    for await (const page of sup.client.replayPages('IF-021', sup.dipId, FILTER)) pages.push(page.messages as Json[]);
    expect(pages.map((p) => p.length)).toEqual([1000, 50]);
    expect(pages.flat().map((m) => m.originalTransactionID)).toEqual(originals);
  });

  it('`dip replay` writes every match as one JSON array and says on stderr how many pages and messages', async () => {
    const dir = profileDir(sup, t.dip.url);
    const run = await runDip({ DIP_DATA_DIR: t.config.dataDir }, 'replay', '--as', dir, '--channel', 'IF-021', '--from', FROM, '--to', TO);
    expect(run.code, run.stderr).toBe(0);
    const written = JSON.parse(run.stdout) as Json[];
    expect(written.map((m) => m.originalTransactionID)).toEqual(originals);
    expect(run.stderr).toMatch(/replay: 1050 message\(s\) in 2 page\(s\)/);
    // --out: the same array in a file, nothing on stdout.
    const file = join(dir, 'replayed.json');
    const toFile = await runDip({ DIP_DATA_DIR: t.config.dataDir }, 'replay', '--as', dir, '--channel', 'IF-021', '--from', FROM, '--to', TO, '--out', file);
    expect(toFile.code, toFile.stderr).toBe(0);
    expect(toFile.stdout).toBe('');
    expect((JSON.parse(readFileSync(file, 'utf8')) as Json[]).map((m) => m.originalTransactionID)).toEqual(originals);
    // --continue continues the exact request: it needs the first run's window, not "the last 24 h".
    const vague = await runDip({ DIP_DATA_DIR: t.config.dataDir }, 'replay', '--as', dir, '--channel', 'IF-021', '--continue', '00000000-0000-8000-8000-000000000000');
    expect(vague.code).toBe(1);
    expect(vague.stderr).toMatch(/--continue needs the --from and --to/);
  }, cliRuns(3).timeout);

  it('a page failing midway: the array written so far is closed, exit 1, stderr names the count and the token to resume with', async () => {
    // The second page is refused (as an overloaded DIP would); the first was real.
    let sentToken: string | undefined;
    const flaky = clientFailingAfterFirstPage((continuation) => {
      sentToken = continuation;
      const refused: DipAnswer<unknown> = { status: 503, headers: {}, raw: Buffer.alloc(0), url: '', body: { messageArray: [{ help: 'busy: try again in 1 s' }] } };
      return Promise.resolve(refused);
    });
    try {
      const first = capture();
      const code = await writeReplay(flaky.replayPages('IF-021', sup.dipId, FILTER), first.output, command());
      expect(code).toBe(1);
      const written = JSON.parse(first.io.stdout) as Json[];
      expect(written).toHaveLength(1000);
      expect(sentToken).toMatch(/^[0-9a-f-]{36}$/);
      expect(first.io.stderr).toContain('replay interrupted: the DIP answered 503 (busy: try again in 1 s) after 1 page(s); 1000 message(s) were written.');
      expect(first.io.stderr).toContain(`the rest: dip replay --as 'sup'\\''s dir' --channel IF-021 --from ${FROM} --to ${TO} --continue ${sentToken}`);
      // Resuming with that token fetches exactly the rest.
      const rest = capture();
      expect(await writeReplay(sup.client.replayPages('IF-021', sup.dipId, FILTER, sentToken), rest.output, command())).toBe(0);
      const remaining = JSON.parse(rest.io.stdout) as Json[];
      expect([...written, ...remaining].map((m) => m.originalTransactionID)).toEqual(originals);
      expect(rest.io.stderr).toMatch(/replay: 50 message\(s\) in 1 page\(s\)/);
    } finally {
      await flaky.close();
    }
  });

  // A probe found the resumed run writing a second JSON array: `dip replay … > all.json` then the printed
  // `--continue` command with `>> all.json` left a file no JSON parser reads. With --out FILE the resumed
  // run appends into the array already in the file: one array, every message once, in order.
  it('--out FILE: the resumed run appends into the array the interrupted one left, so the file is one JSON array of every message', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-replay-out-')), 'replayed.json');
    let sentToken: string | undefined;
    const flaky = clientFailingAfterFirstPage((continuation) => {
      sentToken = continuation;
      return Promise.resolve({ status: 503, headers: {}, raw: Buffer.alloc(0), url: '', body: { messageArray: [{ help: 'busy' }] } });
    });
    try {
      const first = await replayFile(file, { resume: false });
      const firstErr = capture();
      expect(await writeReplay(flaky.replayPages('IF-021', sup.dipId, FILTER), { ...first.output, err: firstErr.output.err }, { ...command(), out: file }, first.appending)).toBe(1);
      await first.output.close();
      expect(JSON.parse(readFileSync(file, 'utf8'))).toHaveLength(1000);
      expect(firstErr.io.stderr).toContain(`the rest: dip replay --as 'sup'\\''s dir' --channel IF-021 --from ${FROM} --to ${TO} --out ${file} --continue ${sentToken}`);
      expect(firstErr.io.stderr).toContain(`(it appends them into the array in ${file})`);
      // The command printed, as a participant runs it: the rest goes into the same array.
      const rest = await replayFile(file, { resume: true });
      expect(rest.appending).toBe(true);
      const restErr = capture();
      expect(await writeReplay(sup.client.replayPages('IF-021', sup.dipId, FILTER, sentToken), { ...rest.output, err: restErr.output.err }, { ...command(), out: file }, rest.appending)).toBe(0);
      await rest.output.close();
      expect((JSON.parse(readFileSync(file, 'utf8')) as Json[]).map((m) => m.originalTransactionID)).toEqual(originals);
      expect(restErr.io.stderr).toContain(`replay: 50 message(s) in 1 page(s), appended to the array in ${file}`);
      // A file that is not the array a replay leaves is not written into.
      writeFileSync(file, '{"not": "an array"}\n');
      await expect(replayFile(file, { resume: true })).rejects.toThrow(/does not end as dip replay leaves its JSON array/);
    } finally {
      await flaky.close();
    }
  });

  it('on stdout, an interrupted replay says how to append the rest into the file its output went to', async () => {
    const flaky = clientFailingAfterFirstPage(() => Promise.resolve({ status: 503, headers: {}, raw: Buffer.alloc(0), url: '', body: null }));
    try {
      const first = capture();
      expect(await writeReplay(flaky.replayPages('IF-021', sup.dipId, FILTER), first.output, command())).toBe(1);
      expect(first.io.stderr).toMatch(/add --out FILE, FILE being where this output went, to append the rest into its array/);
    } finally {
      await flaky.close();
    }
  });

  it('a DIP that cannot be reached midway is reported with the token too', async () => {
    const flaky = clientFailingAfterFirstPage(() => Promise.reject(new Error('connect ECONNREFUSED')));
    try {
      const pages = flaky.replayPages('IF-021', sup.dipId, FILTER);
      expect((await pages.next()).value?.messages).toHaveLength(1000);
      const failure = await pages.next().catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(ReplayInterrupted);
      expect((failure as ReplayInterrupted).continuation).toMatch(/^[0-9a-f-]{36}$/);
      expect((failure as ReplayInterrupted).message).toMatch(/could not be reached: connect ECONNREFUSED/);
    } finally {
      await flaky.close();
    }
  });
});

