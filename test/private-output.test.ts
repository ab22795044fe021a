/**
 * The CLI's output files hold personal data (a replay's messages, the API activity log, a migration
 * export) and credentials (keys, API keys, the operator's session): each is the operator's alone, 0600,
 * whatever the umask, and an existing file written over (made 0644 by an earlier release or by hand) is
 * tightened too: `{ mode }` alone sets the mode only of a file the open creates.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateWriteStream, writePrivateFile } from '../src/cli/private-output.js';
import { replayFile } from '../src/cli/replay-output.js';

const modeOf = (f: string) => (statSync(f).mode & 0o777).toString(8);
const dir = mkdtempSync(join(tmpdir(), 'opendip-private-'));
let umask: number;
beforeAll(() => {
  // The usual default: new files 0644, readable by every local user.
  umask = process.umask(0o022);
});
afterAll(() => {
  process.umask(umask);
});

/** A file as an earlier release (or the operator) left it: 0644. */
function worldReadable(name: string, text = 'old\n'): string {
  const f = join(dir, name);
  writeFileSync(f, text, { mode: 0o644 });
  expect(modeOf(f)).toBe('644');
  return f;
}

async function streamed(f: string, text: string, flags?: 'r+'): Promise<void> {
  const out = privateWriteStream(f, flags ? { flags, start: 0 } : {});
  await new Promise<void>((resolve, reject) => (out.once('error', reject), out.end(text, resolve)));
}

describe('CLI output files are 0600 (src/cli/private-output.ts)', () => {
  it('writePrivateFile: a new file, and an existing 0644 one, end 0600 with the new content', () => {
    const fresh = join(dir, 'key.pem');
    writePrivateFile(fresh, 'secret\n');
    expect(modeOf(fresh)).toBe('600');
    const old = worldReadable('api-key');
    writePrivateFile(old, 'new\n');
    expect([modeOf(old), readFileSync(old, 'utf8')]).toEqual(['600', 'new\n']);
  });

  it('privateWriteStream (dip audit export --out, dip migrate export --out): new and existing files 0600', async () => {
    const fresh = join(dir, 'audit.jsonl');
    await streamed(fresh, '{}\n');
    expect(modeOf(fresh)).toBe('600');
    const old = worldReadable('audit-old.jsonl');
    await streamed(old, '{"a":1}\n');
    expect([modeOf(old), readFileSync(old, 'utf8')]).toEqual(['600', '{"a":1}\n']);
  });

  it('dip replay --out: a first run, and a resumed one into an existing 0644 file, leave it 0600', async () => {
    const fresh = join(dir, 'replay.json');
    const first = await replayFile(fresh, { resume: false });
    await first.output.out('[]\n');
    await first.output.close();
    expect(modeOf(fresh)).toBe('600');
    const old = worldReadable('replay-old.json', '[\n{"a":1}\n]\n');
    const resumed = await replayFile(old, { resume: true });
    expect(resumed.appending).toBe(true);
    await resumed.output.out(',\n{"a":2}\n]\n');
    await resumed.output.close();
    expect([modeOf(old), JSON.parse(readFileSync(old, 'utf8'))]).toEqual(['600', [{ a: 1 }, { a: 2 }]]);
  });
});

describe('a device named as the output keeps its mode (src/cli/private-output.ts)', () => {
  // A null device of the test's own (mknod, as root): `--out /dev/null` run as root had made the host's 0600.
  const device = join(dir, 'null');
  let made = false;
  try {
    execFileSync('mknod', ['-m', '666', device, 'c', '1', '3'], { stdio: 'ignore' });
    made = true;
  } catch {
    // Not root: no device can be made, and no device of the system's could have been changed either.
  }
  it.skipIf(!made)('writing to a character device leaves its mode as it was (666)', () => {
    writePrivateFile(device, 'discarded\n');
    expect(modeOf(device)).toBe('666');
  });
});
