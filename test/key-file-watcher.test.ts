import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../src/ports/logger.js';
import { writeAtomic } from '../src/security/files.js';
import { KeyFileWatcher } from '../src/security/key-file-watcher.js';
import { FakeClock } from './helpers/clocks.js';

/** Records the error lines: the watcher says once why it kept the keys in force. */
function errorLog(): { logger: Logger; errors: string[] } {
  const errors: string[] = [];
  return { errors, logger: { info() {}, warn() {}, error: (_o, msg) => void errors.push(msg ?? '') } };
}

/**
 * The one skeleton under the DIP's key watchers (signing key, encryption key, TLS server certificate):
 * poll the files on the injected clock, re-read only when one was replaced, keep the keys in force when
 * the new ones are unusable (said once, not every poll), and tell listeners only of a real change.
 */
describe('KeyFileWatcher', () => {
  const setUp = async (first = 'one') => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-kfw-'));
    const file = join(dir, 'key.pem');
    await writeAtomic(file, first, 0o600);
    const clock = new FakeClock();
    const { logger, errors } = errorLog();
    const reads: string[] = [];
    const watcher = new KeyFileWatcher<string>(
      {
        files: [file],
        what: 'test key',
        read: (inForce) => {
          const text = readFileSync(file, 'utf8');
          reads.push(text);
          if (text === 'broken') throw new Error('not a key');
          return text === inForce ? null : text;
        },
      },
      first,
      clock,
      logger,
    );
    const told: string[] = [];
    watcher.onChange((now) => told.push(now));
    return { dir, file, clock, errors, reads, watcher, told };
  };

  it('re-reads on the next poll after the file is replaced, and only then; listeners get the new keys', async () => {
    const { file, clock, reads, watcher, told } = await setUp();
    watcher.start(500);
    await clock.advance(1_500);
    expect(reads).toEqual([]);
    await writeAtomic(file, 'two', 0o600);
    await clock.advance(500);
    expect(watcher.inForce()).toBe('two');
    expect(told).toEqual(['two']);
    await clock.advance(5_000);
    expect(reads).toEqual(['two']);
  });

  it('keeps the keys in force when the new file is unusable, says so once, and takes the next good one', async () => {
    const { file, clock, errors, watcher, told } = await setUp();
    watcher.start(500);
    await writeAtomic(file, 'broken', 0o600);
    await clock.advance(2_000);
    expect(watcher.inForce()).toBe('one');
    expect(errors).toEqual(['new test key is unusable; keeping the one in force']);
    expect(told).toEqual([]);
    await writeAtomic(file, 'three', 0o600);
    await clock.advance(500);
    expect(watcher.inForce()).toBe('three');
    expect(told).toEqual(['three']);
  });

  it('tells nobody when the replaced file holds the keys in force, ignores a missing file, and stops polling when stopped', async () => {
    const { file, clock, reads, watcher, told } = await setUp();
    watcher.start(500);
    await writeAtomic(file, 'one', 0o600);
    await clock.advance(500);
    expect(reads).toEqual(['one']);
    expect(told).toEqual([]);
    rmSync(file);
    await clock.advance(500);
    expect(reads).toEqual(['one']);
    watcher.stop();
    expect(clock.pending()).toEqual([]);
    await writeAtomic(file, 'four', 0o600);
    await clock.advance(5_000);
    expect(watcher.inForce()).toBe('one');
    // reload() is what a pushed 'refresh' calls: it looks at once.
    watcher.reload();
    expect(watcher.inForce()).toBe('four');
  });

  it('watches several files: a change to any is a reason to re-read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-kfw-'));
    const [a, b] = [join(dir, 'a.pem'), join(dir, 'b.pem')];
    await writeAtomic(a, 'a1', 0o600);
    await writeAtomic(b, 'b1', 0o600);
    const read = () => `${readFileSync(a, 'utf8')}+${readFileSync(b, 'utf8')}`;
    const watcher = new KeyFileWatcher<string>({ files: [a, b], what: 'pair', read: (inForce) => (read() === inForce ? null : read()) }, read(), new FakeClock(), errorLog().logger);
    await writeAtomic(b, 'b2', 0o600);
    watcher.reload();
    expect(watcher.inForce()).toBe('a1+b2');
    await writeAtomic(a, 'a2', 0o600);
    watcher.reload();
    expect(watcher.inForce()).toBe('a2+b2');
  });
});
