import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestParticipant } from './dip-harness.js';

/** Runs the `dip` command line in its own process, as a participant would (budget: cliRuns). */
export function runDip(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A participant's credentials folder, as `--as DIR` reads it (src/cli/profile.ts), pointing at `dipUrl`. */
export function profileDir(p: TestParticipant, dipUrl: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-profile-'));
  writeFileSync(join(dir, 'key.pem'), p.credentials.keyPem);
  writeFileSync(join(dir, 'cert.pem'), p.credentials.certPem);
  writeFileSync(join(dir, 'api-key'), p.apiKey);
  writeFileSync(join(dir, 'dip-url'), dipUrl);
  return dir;
}
