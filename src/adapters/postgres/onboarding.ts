import type pg from 'pg';
import type { ApplicationStatus, OnboardingApplication } from '../../domain/onboarding.js';
import type { ApplicationDecision, OnboardingApplications } from '../../ports/onboarding.js';
import { applicationColumns, fromApplicationRow, undecided, type ApplicationRow } from '../onboarding-row.js';
import { openPool } from './pool.js';
import { migrateStore } from './roles.js';
import { inTransaction, LOCKS } from './schema.js';

const SAME_CONTACT = "lower(doc::jsonb->>'contactEmail')";

/** Onboarding applications on the cluster's PostgreSQL (one connection of their own: they are written rarely). */
export class PgOnboardingApplications implements OnboardingApplications {
  private constructor(private readonly pool: pg.Pool) {}

  /** `migrationUrl`: the table's owner, which applies the schema (roles.ts); absent, `url`'s role does. */
  static async open(url: string, migrationUrl?: string): Promise<PgOnboardingApplications> {
    const pool = openPool({ url, max: 2, applicationName: 'opendip-onboarding' });
    try {
      await migrateStore(
        pool,
        migrationUrl,
        'opendip-onboarding-owner',
        LOCKS.onboardingSchema,
        `CREATE TABLE IF NOT EXISTS onboarding_applications (
           id text PRIMARY KEY, status text NOT NULL, verify_token_hash text UNIQUE, verify_expires_at bigint NOT NULL, created_at bigint NOT NULL, doc text NOT NULL)`,
      );
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PgOnboardingApplications(pool);
  }

  create(a: OnboardingApplication, limits: { pending: number; unverified: number }, now: number): Promise<boolean> {
    return inTransaction(this.pool, async (client) => {
      // Taken by every create (and by nothing that only reads): two nodes' applications are counted one after the other.
      await client.query('LOCK TABLE onboarding_applications IN SHARE ROW EXCLUSIVE MODE');
      await client.query("DELETE FROM onboarding_applications WHERE status = 'unverified' AND verify_expires_at <= $1", [now]);
      const count = async (sql: string, values: string[] = []) => Number((await client.query<{ n: string }>(sql, values)).rows[0]?.n ?? 0);
      if ((await count("SELECT count(*) AS n FROM onboarding_applications WHERE status = 'pending'")) >= limits.pending) return false;
      const email = a.contactEmail.toLowerCase();
      if ((await count(`SELECT count(*) AS n FROM onboarding_applications WHERE status = 'unverified' AND ${SAME_CONTACT} IS DISTINCT FROM $1`, [email])) >= limits.unverified) return false;
      await client.query(`DELETE FROM onboarding_applications WHERE status = 'unverified' AND ${SAME_CONTACT} = $1`, [email]);
      await client.query('INSERT INTO onboarding_applications (id, status, verify_token_hash, verify_expires_at, created_at, doc) VALUES ($1, $2, $3, $4, $5, $6)', applicationColumns(a));
      return true;
    });
  }

  async forget(id: string): Promise<void> {
    await this.pool.query("DELETE FROM onboarding_applications WHERE id = $1 AND status = 'unverified'", [id]);
  }

  async verify(tokenHash: string, now: number): Promise<OnboardingApplication | undefined> {
    const { rows } = await this.pool.query<ApplicationRow>("SELECT * FROM onboarding_applications WHERE verify_token_hash = $1 AND status = 'unverified' AND verify_expires_at > $2", [tokenHash, now]);
    const row = rows[0];
    if (!row) return undefined;
    return this.change({ ...fromApplicationRow(row), status: 'pending', verifyTokenHash: null, verifiedAt: now }, 'unverified');
  }

  async get(id: string): Promise<OnboardingApplication | undefined> {
    const { rows } = await this.pool.query<ApplicationRow>('SELECT * FROM onboarding_applications WHERE id = $1', [id]);
    return rows[0] && fromApplicationRow(rows[0]);
  }

  async list(status: ApplicationStatus): Promise<OnboardingApplication[]> {
    return (await this.pool.query<ApplicationRow>('SELECT * FROM onboarding_applications WHERE status = $1 ORDER BY created_at, id', [status])).rows.map(fromApplicationRow);
  }

  async decide(id: string, d: ApplicationDecision): Promise<OnboardingApplication | undefined> {
    const current = await this.get(id);
    if (current?.status !== 'pending') return undefined;
    return this.change({ ...current, ...d }, 'pending');
  }

  async undecide(id: string, decidedAt: number): Promise<OnboardingApplication | undefined> {
    const current = await this.get(id);
    if (current?.status !== 'approved' || current.decidedAt !== decidedAt) return undefined;
    return this.change(undecided(current), 'approved');
  }

  /** Writes the application only while it still has the status it was read with: of two writers at once, one wins. */
  private async change(next: OnboardingApplication, was: ApplicationStatus): Promise<OnboardingApplication | undefined> {
    const [id, status, hash, , , doc] = applicationColumns(next);
    const { rowCount } = await this.pool.query('UPDATE onboarding_applications SET status = $2, verify_token_hash = $3, doc = $4 WHERE id = $1 AND status = $5', [id, status, hash, doc, was]);
    return (rowCount ?? 0) > 0 ? next : undefined;
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
