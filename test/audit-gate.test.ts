import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { advisoriesOf, auditFails, auditResult, judgeAudit, parseExceptions, parseOutcome, type AuditException } from '../scripts/audit-judge.js';

// The shape of `npm audit --json` (auditReportVersion 2): a package's own advisories are objects under
// `via`; a package that is vulnerable only through a dependency names it as a string.
const report = {
  auditReportVersion: 2,
  vulnerabilities: {
    'tar-fs': {
      name: 'tar-fs',
      severity: 'high',
      isDirect: false,
      via: [
        { source: 1101, name: 'tar-fs', dependency: 'tar-fs', title: 'tar-fs can extract outside the given directory', url: 'https://github.com/advisories/GHSA-8cj5-5rvv-wf4v', severity: 'high', range: '<2.1.2' },
      ],
      effects: ['prebuild-install'],
      range: '<2.1.2',
      nodes: ['node_modules/tar-fs'],
      fixAvailable: true,
    },
    'prebuild-install': { name: 'prebuild-install', severity: 'high', isDirect: false, via: ['tar-fs'], effects: [], range: '*', nodes: [], fixAvailable: true },
    esbuild: {
      name: 'esbuild',
      severity: 'moderate',
      isDirect: false,
      via: [{ source: 1102, name: 'esbuild', dependency: 'esbuild', title: 'dev server answers any website', url: 'https://github.com/advisories/GHSA-67mh-4wv8-2f99', severity: 'moderate', range: '<=0.24.2' }],
      effects: [],
      range: '<=0.24.2',
      nodes: ['node_modules/esbuild'],
      fixAvailable: true,
    },
  },
  metadata: { vulnerabilities: { info: 0, low: 0, moderate: 1, high: 2, critical: 0, total: 3 } },
};

const exception = (over: Partial<AuditException> = {}): AuditException => ({
  advisory: 'GHSA-8cj5-5rvv-wf4v',
  package: 'tar-fs',
  reason: 'used only by prebuild-install at install time, on tarballs from the registry',
  by: 'security reviewer',
  accepted: '2026-11-01',
  reviewBy: '2026-12-31',
  ...over,
});

describe('dependency audit gate', () => {
  it('reads each advisory once, from the package that carries it', () => {
    const advisories = advisoriesOf(report);
    expect(advisories.map((a) => [a.id, a.package, a.severity])).toEqual([
      ['GHSA-67mh-4wv8-2f99', 'esbuild', 'moderate'],
      ['GHSA-8cj5-5rvv-wf4v', 'tar-fs', 'high'],
    ]);
  });

  it('fails on a high advisory nobody accepted, and only reports one below high', () => {
    const v = judgeAudit(advisoriesOf(report), [], '2026-11-30');
    expect(v.findings.map((a) => a.id)).toEqual(['GHSA-8cj5-5rvv-wf4v']);
    expect(v.belowThreshold).toBe(1);
    expect(auditFails(v)).toBe(true);
  });

  it('passes with an exception in force, up to and including its review day', () => {
    for (const today of ['2026-11-30', '2026-12-31']) {
      const v = judgeAudit(advisoriesOf(report), [exception()], today);
      expect(v.findings).toEqual([]);
      expect(v.accepted.map((x) => x.advisory.id)).toEqual(['GHSA-8cj5-5rvv-wf4v']);
      expect(auditFails(v)).toBe(false);
    }
  });

  it('fails again once the exception lapses, and an exception for another package does not count', () => {
    const lapsed = judgeAudit(advisoriesOf(report), [exception()], '2027-01-01');
    expect(lapsed.expired).toHaveLength(1);
    expect(auditFails(lapsed)).toBe(true);
    const elsewhere = judgeAudit(advisoriesOf(report), [exception({ package: 'tar' })], '2026-11-30');
    expect(elsewhere.findings).toHaveLength(1);
    expect(elsewhere.stale).toHaveLength(1);
  });

  it('refuses a malformed exceptions file, naming the field', () => {
    expect(() => parseExceptions({ exceptions: [{ ...exception(), reason: '' }] })).toThrow(/exceptions\[0\]\.reason: required/);
    expect(() => parseExceptions({ exceptions: [{ ...exception(), reviewBy: '31/12/2026' }] })).toThrow(/reviewBy: '31\/12\/2026' is not a date/);
    expect(() => parseExceptions({ exceptions: [exception({ reviewBy: '2026-01-01' })] })).toThrow(/before accepted/);
    expect(() => parseExceptions([])).toThrow(/expected \{ "exceptions"/);
    expect(parseExceptions({ exceptions: [exception()] })).toEqual([exception()]);
  });

  it("says in SECURITY.md's scan results what the recorded run found and when, never a check that did not run", () => {
    expect(auditResult({ checked: false, on: '2026-12-05', reason: 'E405; 405 Method Not Allowed' }, 0)).toBe(
      'NOT CHECKED on 2026-12-05: the advisory service could not be asked (E405; 405 Method Not Allowed); CI passes this gate with `--allow-unavailable`, so no advisory is ruled out',
    );
    expect(auditResult({ checked: true, on: '2026-12-01', advisories: 3, unaccepted: 0, accepted: 1 }, 1)).toBe('checked on 2026-12-01: 0 unaccepted high or critical advisories, 1 accepted; 1 accepted exception(s), below');
    expect(auditResult({ checked: true, on: '2026-12-01', advisories: 0, unaccepted: 0, accepted: 0 }, 0)).toBe('checked on 2026-12-01: 0 unaccepted high or critical advisories, 0 accepted; no accepted exceptions');
    expect(auditResult(null, 0)).toBe('NOT RECORDED: no run of `npm run audit:deps -- --record` is on file (`audit-outcome.json`), so nothing is claimed');
    expect(() => parseOutcome({ checked: true, on: '5 Dec' })).toThrow(/on: '5 Dec' is not a date/);
    expect(() => parseOutcome({ checked: false, on: '2026-12-05' })).toThrow(/reason: required/);
  });

  describe('npm run audit on a saved report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-audit-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const run = (exceptions: AuditException[], extra: string[] = []) => {
      writeFileSync(join(dir, 'report.json'), JSON.stringify(report));
      writeFileSync(join(dir, 'exceptions.json'), JSON.stringify({ exceptions }));
      return spawnSync(
        process.execPath,
        ['--import', 'tsx', 'scripts/audit.ts', '--report', join(dir, 'report.json'), '--exceptions', join(dir, 'exceptions.json'), '--today', '2026-11-30', ...extra],
        { encoding: 'utf8' },
      );
    };

    it('records what it found, and when, with --record: a check, with its numbers', () => {
      const outcome = join(dir, 'outcome.json');
      expect(run([exception()], ['--record', '--outcome', outcome]).status).toBe(0);
      expect(parseOutcome(JSON.parse(readFileSync(outcome, 'utf8')))).toEqual({ checked: true, on: '2026-11-30', advisories: 2, unaccepted: 0, accepted: 1 });
      expect(run([], ['--record', '--outcome', outcome]).status).toBe(1);
      expect(parseOutcome(JSON.parse(readFileSync(outcome, 'utf8')))).toMatchObject({ checked: true, unaccepted: 1, accepted: 0 });
    });

    it('records NOT CHECKED when the advisory service could not be asked, also when --allow-unavailable passes it', () => {
      const outcome = join(dir, 'outcome.json');
      writeFileSync(join(dir, 'refused.json'), JSON.stringify({ error: { code: 'E405', summary: '405 Method Not Allowed - POST https://mirror.example/-/npm/v1/security/advisories/bulk' } }));
      const args = ['--report', join(dir, 'refused.json'), '--exceptions', 'audit-exceptions.json', '--today', '2026-12-05', '--record', '--outcome', outcome];
      const passed = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/audit.ts', ...args, '--allow-unavailable'], { encoding: 'utf8' });
      expect(passed.status, passed.stderr).toBe(0);
      expect(passed.stdout).toMatch(/NOT CHECKED/);
      expect(parseOutcome(JSON.parse(readFileSync(outcome, 'utf8')))).toEqual({ checked: false, on: '2026-12-05', reason: 'E405; 405 Method Not Allowed - POST https://mirror.example/-/npm/v1/security/advisories/bulk' });
    });

    it('exits 1 naming the finding, 0 once it is accepted', () => {
      const failed = run([]);
      expect(failed.status).toBe(1);
      expect(failed.stderr).toMatch(/FINDING\s+high\s+tar-fs <2\.1\.2: tar-fs can extract outside/);
      const passed = run([exception()]);
      expect(passed.status, passed.stderr).toBe(0);
      expect(passed.stdout).toMatch(/accepted\s+high\s+tar-fs/);
      expect(passed.stdout).toMatch(/high or critical: 0 unaccepted, 1 accepted/);
    });
  });
});
