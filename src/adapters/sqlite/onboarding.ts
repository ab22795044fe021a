import Database from 'better-sqlite3';
import { openPrivateDatabase } from './private-file.js';
import type { ApplicationStatus, OnboardingApplication } from '../../domain/onboarding.js';
import type { ApplicationDecision, OnboardingApplications } from '../../ports/onboarding.js';
import { applicationColumns, fromApplicationRow, undecided, type ApplicationRow } from '../onboarding-row.js';

const SAME_CONTACT = "lower(json_extract(doc, '$.contactEmail'))";

/** Onboarding applications in a small SQLite file of their own (written by the public form and the operators, rarely). */
export class SqliteOnboardingApplications implements OnboardingApplications {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = openPrivateDatabase(file);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS onboarding_applications (
      id TEXT PRIMARY KEY, status TEXT NOT NULL, verify_token_hash TEXT UNIQUE, verify_expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL, doc TEXT NOT NULL)`);
  }

  create(a: OnboardingApplication, limits: { pending: number; unverified: number }, now: number): Promise<boolean> {
    // One transaction: nothing else writes this file between the counts and the insert.
    return Promise.resolve(
      this.db.transaction(() => {
        this.db.prepare("DELETE FROM onboarding_applications WHERE status = 'unverified' AND verify_expires_at <= ?").run(now);
        const count = (sql: string, ...values: string[]) => this.db.prepare<string[], { n: number }>(sql).get(...values)?.n ?? 0;
        if (count("SELECT count(*) AS n FROM onboarding_applications WHERE status = 'pending'") >= limits.pending) return false;
        const email = a.contactEmail.toLowerCase();
        if (count(`SELECT count(*) AS n FROM onboarding_applications WHERE status = 'unverified' AND ${SAME_CONTACT} IS NOT ?`, email) >= limits.unverified) return false;
        this.db.prepare(`DELETE FROM onboarding_applications WHERE status = 'unverified' AND ${SAME_CONTACT} = ?`).run(email);
        this.db.prepare('INSERT INTO onboarding_applications (id, status, verify_token_hash, verify_expires_at, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)').run(...applicationColumns(a));
        return true;
      })(),
    );
  }

  forget(id: string): Promise<void> {
    this.db.prepare("DELETE FROM onboarding_applications WHERE id = ? AND status = 'unverified'").run(id);
    return Promise.resolve();
  }

  verify(tokenHash: string, now: number): Promise<OnboardingApplication | undefined> {
    return Promise.resolve(
      this.db.transaction(() => {
        const row = this.db.prepare<[string, number], ApplicationRow>("SELECT * FROM onboarding_applications WHERE verify_token_hash = ? AND status = 'unverified' AND verify_expires_at > ?").get(tokenHash, now);
        if (!row) return undefined;
        const next: OnboardingApplication = { ...fromApplicationRow(row), status: 'pending', verifyTokenHash: null, verifiedAt: now };
        this.write(next);
        return next;
      })(),
    );
  }

  get(id: string): Promise<OnboardingApplication | undefined> {
    const row = this.db.prepare<[string], ApplicationRow>('SELECT * FROM onboarding_applications WHERE id = ?').get(id);
    return Promise.resolve(row && fromApplicationRow(row));
  }

  list(status: ApplicationStatus): Promise<OnboardingApplication[]> {
    return Promise.resolve(this.db.prepare<[string], ApplicationRow>('SELECT * FROM onboarding_applications WHERE status = ? ORDER BY created_at, id').all(status).map(fromApplicationRow));
  }

  decide(id: string, d: ApplicationDecision): Promise<OnboardingApplication | undefined> {
    return Promise.resolve(
      this.db.transaction(() => {
        const row = this.db.prepare<[string], ApplicationRow>("SELECT * FROM onboarding_applications WHERE id = ? AND status = 'pending'").get(id);
        if (!row) return undefined;
        const next: OnboardingApplication = { ...fromApplicationRow(row), ...d };
        this.write(next);
        return next;
      })(),
    );
  }

  undecide(id: string, decidedAt: number): Promise<OnboardingApplication | undefined> {
    return Promise.resolve(
      this.db.transaction(() => {
        const row = this.db.prepare<[string], ApplicationRow>("SELECT * FROM onboarding_applications WHERE id = ? AND status = 'approved'").get(id);
        const current = row && fromApplicationRow(row);
        if (current?.decidedAt !== decidedAt) return undefined;
        const next = undecided(current);
        this.write(next);
        return next;
      })(),
    );
  }

  private write(a: OnboardingApplication): void {
    const [id, status, hash, , , doc] = applicationColumns(a);
    this.db.prepare('UPDATE onboarding_applications SET status = ?, verify_token_hash = ?, doc = ? WHERE id = ?').run(status, hash, doc, id);
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}
