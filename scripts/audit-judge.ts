/**
 * The dependency audit's verdict, kept apart from running npm so it can be tested on recorded reports:
 * the high and critical advisories of an `npm audit --json` report (format 2, npm 7 and later), less
 * the risks accepted in audit-exceptions.json. An exception names one advisory, says why the risk is
 * accepted and by whom, and lapses on its review date, so an accepted risk is looked at again.
 */

export const FAILING_SEVERITIES = ['high', 'critical'] as const;

export interface AuditException {
  /** The advisory's GHSA ID, as in its URL (https://github.com/advisories/GHSA-…). */
  advisory: string;
  /** The vulnerable package the advisory is about. */
  package: string;
  /** Why the risk is accepted: not reachable from OpenDIP's use, development only, no fix yet, … */
  reason: string;
  /** Who accepted it. */
  by: string;
  /** YYYY-MM-DD: when it was accepted. */
  accepted: string;
  /** YYYY-MM-DD: after this day the exception no longer applies and the audit fails again. */
  reviewBy: string;
}

export interface Advisory {
  id: string;
  package: string;
  severity: string;
  title: string;
  url: string;
  range: string;
}

export interface AuditVerdict {
  /** High or critical advisories no exception covers: the audit fails. */
  findings: Advisory[];
  /** High or critical advisories covered by an exception in force. */
  accepted: Array<{ advisory: Advisory; exception: AuditException }>;
  /** Exceptions past their review date that still match an advisory: the audit fails. */
  expired: AuditException[];
  /** Exceptions that match no current advisory: harmless, to be removed. */
  stale: AuditException[];
  /** Advisories below high, reported only. */
  belowThreshold: number;
}

/** The advisories of an npm audit report (a package's entry lists its own advisories as objects under `via`). */
export function advisoriesOf(report: unknown): Advisory[] {
  if (!isRecord(report) || !isRecord(report['vulnerabilities'])) throw new Error('not an npm audit report (no "vulnerabilities")');
  const byUrl = new Map<string, Advisory>();
  for (const entry of Object.values(report['vulnerabilities'])) {
    if (!isRecord(entry) || !Array.isArray(entry['via'])) continue;
    for (const via of entry['via']) {
      if (!isRecord(via) || typeof via['url'] !== 'string') continue; // a string: inherited from a dependency
      const url = via['url'];
      byUrl.set(url, {
        id: /GHSA(?:-[a-z0-9]{4}){3}/i.exec(url)?.[0] ?? url,
        package: typeof via['name'] === 'string' ? via['name'] : String(entry['name']),
        severity: typeof via['severity'] === 'string' ? via['severity'] : 'unknown',
        title: typeof via['title'] === 'string' ? via['title'] : '',
        url,
        range: typeof via['range'] === 'string' ? via['range'] : '',
      });
    }
  }
  return [...byUrl.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/** Exceptions from audit-exceptions.json, each checked: a malformed one is an error, not a silent pass. */
export function parseExceptions(json: unknown): AuditException[] {
  if (!isRecord(json) || !Array.isArray(json['exceptions'])) throw new Error('audit exceptions: expected { "exceptions": [ … ] }');
  return json['exceptions'].map((e: unknown, i) => {
    const where = `audit exceptions[${i}]`;
    if (!isRecord(e)) throw new Error(`${where}: not an object`);
    const text = (k: keyof AuditException): string => {
      const v = e[k];
      if (typeof v !== 'string' || v.trim() === '') throw new Error(`${where}.${k}: required (a non-empty string)`);
      return v;
    };
    const day = (k: 'accepted' | 'reviewBy'): string => {
      const v = text(k);
      if (!isDay(v)) throw new Error(`${where}.${k}: '${v}' is not a date (YYYY-MM-DD)`);
      return v;
    };
    const exception = { advisory: text('advisory'), package: text('package'), reason: text('reason'), by: text('by'), accepted: day('accepted'), reviewBy: day('reviewBy') };
    if (exception.reviewBy < exception.accepted) throw new Error(`${where}: reviewBy ${exception.reviewBy} is before accepted ${exception.accepted}`);
    return exception;
  });
}

/** `today` is YYYY-MM-DD (UTC); an exception applies up to and including its review day. */
export function judgeAudit(advisories: Advisory[], exceptions: AuditException[], today: string): AuditVerdict {
  const verdict: AuditVerdict = { findings: [], accepted: [], expired: [], stale: [], belowThreshold: 0 };
  const used = new Set<AuditException>();
  for (const a of advisories) {
    if (!(FAILING_SEVERITIES as readonly string[]).includes(a.severity)) {
      verdict.belowThreshold++;
      continue;
    }
    const match = exceptions.find((e) => e.advisory.toLowerCase() === a.id.toLowerCase() && e.package === a.package);
    if (!match) {
      verdict.findings.push(a);
      continue;
    }
    used.add(match);
    if (match.reviewBy < today) verdict.expired.push(match);
    else verdict.accepted.push({ advisory: a, exception: match });
  }
  verdict.stale = exceptions.filter((e) => !used.has(e));
  return verdict;
}

export const auditFails = (v: AuditVerdict): boolean => v.findings.length > 0 || v.expired.length > 0;

/**
 * What one run of the audit found out, and on which day (UTC), as `npm run audit:deps -- --record` keeps
 * it (audit-outcome.json) for SECURITY.md's scan results: a check with its numbers, or NOT CHECKED with
 * why. CI runs the audit with --allow-unavailable, which passes when the advisory service cannot be
 * asked, so a passing CI run says nothing about advisories: only a recorded check does.
 */
export type AuditOutcome =
  | { checked: true; on: string; advisories: number; unaccepted: number; accepted: number }
  | { checked: false; on: string; reason: string };

/** A recorded outcome, checked: a malformed one is an error, never read as a check. */
export function parseOutcome(json: unknown): AuditOutcome {
  if (!isRecord(json) || typeof json['checked'] !== 'boolean') throw new Error('audit outcome: expected { "checked": true | false, "on": "YYYY-MM-DD", … }');
  const on = json['on'];
  if (typeof on !== 'string' || !isDay(on)) throw new Error(`audit outcome.on: '${String(on)}' is not a date (YYYY-MM-DD)`);
  if (!json['checked']) {
    const reason = json['reason'];
    if (typeof reason !== 'string' || reason.trim() === '') throw new Error('audit outcome.reason: required (why nothing was checked)');
    return { checked: false, on, reason };
  }
  const count = (k: 'advisories' | 'unaccepted' | 'accepted'): number => {
    const v = json[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`audit outcome.${k}: required (a count)`);
    return v;
  };
  return { checked: true, on, advisories: count('advisories'), unaccepted: count('unaccepted'), accepted: count('accepted') };
}

/** The scan results' words for the recorded outcome (null: none on file): what was found and when, never a check that did not run. */
export function auditResult(outcome: AuditOutcome | null, exceptions: number): string {
  if (outcome === null) return 'NOT RECORDED: no run of `npm run audit:deps -- --record` is on file (`audit-outcome.json`), so nothing is claimed';
  if (!outcome.checked) return `NOT CHECKED on ${outcome.on}: the advisory service could not be asked (${outcome.reason}); CI passes this gate with \`--allow-unavailable\`, so no advisory is ruled out`;
  return `checked on ${outcome.on}: ${outcome.unaccepted} unaccepted high or critical advisories, ${outcome.accepted} accepted; ${exceptions === 0 ? 'no accepted exceptions' : `${exceptions} accepted exception(s), below`}`;
}

function isDay(v: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(v) && !Number.isNaN(Date.parse(`${v}T00:00:00Z`));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
