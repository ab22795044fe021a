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
      if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`))) throw new Error(`${where}.${k}: '${v}' is not a date (YYYY-MM-DD)`);
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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
