/**
 * Dependency audit (CI gate): `npm audit` at high severity, less the accepted risks in
 * audit-exceptions.json (see CONTRIBUTING.md). Exit 1 on an unaccepted high or critical advisory, on an
 * exception past its review date, or on a malformed exceptions file.
 *
 *   npm run audit                              ask the registry's advisory service
 *   npm run audit -- --report saved.json       judge a saved `npm audit --json` report instead
 *   npm run audit -- --allow-unavailable       pass (saying so loudly) when the service cannot be reached
 *   npm run audit -- --record                  also write what was found, and the day, to audit-outcome.json
 *                                              (--outcome FILE: elsewhere): SECURITY.md's scan results print it
 *
 * --allow-unavailable exists for build machines whose registry mirror serves packages but not the
 * advisory endpoint; without it an unreachable service fails the audit, because nothing was checked.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { advisoriesOf, auditFails, judgeAudit, parseExceptions, type Advisory, type AuditOutcome } from './audit-judge.js';

const { values } = parseArgs({
  options: {
    report: { type: 'string' },
    exceptions: { type: 'string', default: 'audit-exceptions.json' },
    'allow-unavailable': { type: 'boolean', default: false },
    today: { type: 'string' }, // YYYY-MM-DD, for trying an exception's expiry
    record: { type: 'boolean', default: false },
    outcome: { type: 'string', default: 'audit-outcome.json' }, // where --record writes
  },
});
const today = values.today ?? new Date().toISOString().slice(0, 10);
/** The outcome written where --record says (a checked or NOT CHECKED run alike), before the exit. */
const record = (outcome: AuditOutcome) => {
  if (values.record) writeFileSync(values.outcome, `${JSON.stringify(outcome, null, 2)}\n`);
};

const exceptions = parseExceptions(JSON.parse(readFileSync(values.exceptions, 'utf8')) as unknown);

let report: unknown;
if (values.report !== undefined) {
  report = JSON.parse(readFileSync(values.report, 'utf8')) as unknown;
} else {
  // npm exits non-zero when it finds anything; the JSON on stdout is what counts.
  const run = spawnSync('npm', ['audit', '--json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  try {
    report = JSON.parse(run.stdout) as unknown;
  } catch {
    report = { error: { summary: (run.stderr || run.stdout || `npm exited ${run.status}`).trim().split('\n')[0] } };
  }
}

const unavailable = unavailableReason(report);
if (unavailable !== null) {
  const line = `npm audit: NOT CHECKED: the advisory service could not be asked (${unavailable})`;
  record({ checked: false, on: today, reason: unavailable });
  if (values['allow-unavailable']) {
    console.log(`${line}; passing because --allow-unavailable was given (${exceptions.length} exception(s) on file)`);
    process.exit(0);
  }
  console.error(`${line}; run where the registry serves /-/npm/v1/security/advisories/bulk, or pass --allow-unavailable`);
  process.exit(1);
}

const advisories = advisoriesOf(report);
const verdict = judgeAudit(advisories, exceptions, today);
record({ checked: true, on: today, advisories: advisories.length, unaccepted: verdict.findings.length, accepted: verdict.accepted.length });
const show = (a: Advisory) => `${a.severity.padEnd(8)} ${a.package} ${a.range}: ${a.title} (${a.url})`;
for (const a of verdict.findings) console.error(`FINDING   ${show(a)}`);
for (const e of verdict.expired) console.error(`EXPIRED   exception for ${e.advisory} in ${e.package} lapsed on ${e.reviewBy}: review it (${e.reason})`);
for (const { advisory, exception } of verdict.accepted) console.log(`accepted  ${show(advisory)}: ${exception.reason} (${exception.by}, ${exception.accepted}, review by ${exception.reviewBy})`);
for (const e of verdict.stale) console.log(`stale     exception for ${e.advisory} in ${e.package} matches no advisory any more: remove it`);
console.log(
  `npm audit: ${advisories.length} advisories; high or critical: ${verdict.findings.length} unaccepted, ${verdict.accepted.length} accepted, ${verdict.expired.length} with a lapsed exception; ${verdict.belowThreshold} below high`,
);
process.exit(auditFails(verdict) ? 1 : 0);

/** Why the output is not an audit report (npm's error JSON, a registry refusal), or null when it is one. */
function unavailableReason(r: unknown): string | null {
  if (typeof r !== 'object' || r === null) return 'no JSON from npm audit';
  const o = r as Record<string, unknown>;
  if (typeof o['vulnerabilities'] === 'object' && o['vulnerabilities'] !== null) return null;
  const err = o['error'] as { summary?: unknown; code?: unknown } | undefined;
  const parts = [o['message'], err?.code, err?.summary].filter((x): x is string => typeof x === 'string' && x !== '');
  return parts.join('; ') || 'the report has no "vulnerabilities"';
}
