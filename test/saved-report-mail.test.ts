import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SmtpMailer } from '../src/adapters/mail/smtp-mailer.js';
import { openSqliteBackend, type SqliteBackend } from '../src/adapters/sqlite/index.js';
import { nextMailAfter, readSavedReport, reportOwner, systemOwner, type ReportMailing, type SavedReport, type SavedReportInput } from '../src/domain/saved-report.js';
import type { ReportFilter, Viewer } from '../src/pipeline/reports.js';
import { RecipientConfirmation } from '../src/pipeline/mail-recipients.js';
import { SavedReportMail } from '../src/pipeline/saved-report-mail.js';
import type { PortalAccount } from '../src/ports/portal-accounts.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';
import { startSmtp, type TestSmtp } from './helpers/smtp.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// A Sunday, 05:00 UTC: the daily e-mail is due at 06:00 today, the weekly one on Monday at 06:00.
const START = Date.UTC(2026, 5, 7, 5, 0, 0);

/** A text part as written (quoted-printable: long lines broken with `=`, `=` itself as `=3D`). */
const unquoted = (data: string): string => data.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));

const account = (username: string, participantDipId: string | null): PortalAccount => ({
  username,
  participantDipId,
  admin: false,
  level: 'viewer',
  displayName: username,
  passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA',
  totpSecretSealed: null,
  lastTotpStep: 0,
  sessionEpoch: 0,
  disabled: false,
  createdAt: 0,
  createdBy: 'test',
});

/**
 * Saved reports e-mailed on their schedule: two nodes on one store, a clock the test moves, a real SMTP
 * conversation. Each e-mail goes once (one node's claim), at its time, with its owner's view of the report.
 */
describe('saved reports e-mailed', () => {
  let backend: SqliteBackend;
  let clock: FakeClock;
  let smtp: TestSmtp;
  let nodes: SavedReportMail[];
  let recipients: RecipientConfirmation;
  const asked: Array<{ viewer: Viewer; filter: ReportFilter }> = [];
  /** Participants suspended now (Registry.refusal's answer for them). */
  const suspended = new Map<string, string>();
  /** Operator accounts (OperatorAccounts): an automation account has no portal sign-in. */
  const operators = new Map<string, 'enabled' | 'disabled'>();
  const reports = {
    throughput: async (viewer: Viewer, filter: ReportFilter) => {
      asked.push({ viewer, filter });
      return [{ bucket: new Date(filter.fromMs).toISOString(), in: 3, out: 2, errors: 1, pending: 0 }];
    },
    latency: async () => [],
  };

  beforeEach(async () => {
    clock = new FakeClock(START);
    backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-saved-mail-')), 'dip.db'), { clock });
    smtp = await startSmtp();
    asked.length = 0;
    suspended.clear();
    operators.clear();
    const mailer = new SmtpMailer({ host: '127.0.0.1', port: smtp.port, secure: false, requireTLS: false, user: null, pass: null, from: 'dip@example.net' });
    // Two nodes sharing the store, each with its own timer, as a cluster's would.
    recipients = new RecipientConfirmation({ store: backend.mailRecipients, mailer, clock, logger: quietLogger, portalUrl: () => 'https://portal.example.net' });
    nodes = [0, 1].map(() => new SavedReportMail({ store: backend.savedReports, recipients, reports, accounts: backend.portalAccounts, mayAct: (dipId) => !suspended.has(dipId), operatorEnabled: async (name) => operators.get(name) === 'enabled', mailer, clock, logger: quietLogger, portalUrl: () => 'https://portal.example.net' }));
    for (const n of nodes) n.start();
    await backend.portalAccounts.createAccount(account('alice', 'SUP0000001'));
  });
  afterEach(async () => {
    for (const n of nodes) await n.stop();
    await smtp.close();
    await backend.close();
  });

  /** The confirmation e-mail's link opened: its token. */
  const confirmFrom = async (mail: { data: string }) => {
    const token = /token=(dipmail_[\w-]+)/.exec(unquoted(mail.data))?.[1];
    expect(await recipients.confirm(token ?? '')).toBeDefined();
  };

  /** Saved, its address already agreed (the confirmation's own test is below). */
  const save = async (id: string, mailing: ReportMailing, owner = 'user:alice', participantDipId: string | null = 'SUP0000001', name = `IF-021 ${id}`) => {
    await backend.mailRecipients.ask({ scope: owner, address: mailing.to.toLowerCase(), tokenHash: `hash-${id}`, requestedAt: 0, expiresAt: clock.now() + DAY, confirmedAt: null }, clock.now(), { since: 0, max: 1_000 });
    await backend.mailRecipients.confirm(`hash-${id}`, clock.now());
    await saveUnconfirmed(id, mailing, owner, participantDipId, name);
  };
  const saveUnconfirmed = async (id: string, mailing: ReportMailing, owner = 'user:alice', participantDipId: string | null = 'SUP0000001', name = `IF-021 ${id}`) => {
    const r: SavedReport = {
      id,
      owner,
      participantDipId,
      name,
      definition: { report: 'throughput', period: 'day', channels: ['IF-021'], sender: null, recipient: null },
      mailing,
      createdAt: clock.now(),
      nextDueAt: nextMailAfter(mailing.every, clock.now()),
    };
    expect(await backend.savedReports.create(r, 20)).toBeNull();
  };

  /** Moves the clock (the nodes' timers run), then waits for the passes it started. */
  const advance = async (ms: number) => {
    await clock.advance(ms);
    for (const n of nodes) await n.runOnce();
  };

  it('sends a daily summary once a day at 06:00 UTC, from one node, with the owner as viewer and the period ending then', async () => {
    await save('daily', { to: 'alice@example.net', every: 'daily', format: 'summary' });
    await advance(HOUR - 60_000);
    expect(smtp.mails).toHaveLength(0);
    await advance(60_000);
    expect(smtp.mails).toHaveLength(1);
    const mail = smtp.mails[0]!;
    expect(mail.to).toEqual(['alice@example.net']);
    const text = unquoted(mail.data);
    expect(text).toContain('Subject: OpenDIP report: IF-021 daily');
    expect(text).toContain('Messages in: 3');
    expect(text).toContain('https://portal.example.net/portal/reports?period=day&channel=IF-021');
    expect(asked).toEqual([{ viewer: { kind: 'participant', dipId: 'SUP0000001' }, filter: { fromMs: START + HOUR - DAY, toMs: START + HOUR, granularity: 'hour', channels: ['IF-021'] } }]);
    // The rest of the day: nothing more; the next morning, the next one.
    await advance(DAY - 60_000);
    expect(smtp.mails).toHaveLength(1);
    await advance(60_000);
    expect(smtp.mails).toHaveLength(2);
  });

  // secrev3 M1: a name's line breaks became free lines of the DIP's own e-mail (phishing under its sender).
  it("quotes a report's name on one line in subject and body, its control characters as codes (a name saved before they were refused)", async () => {
    const name = 'Weekly\r\n\r\nACTION NEEDED: your DIP certificate was revoked.\u2028Re-enrol at https://dip-support.evil.example';
    await save('daily', { to: 'alice@example.net', every: 'daily', format: 'summary' }, 'user:alice', 'SUP0000001', name);
    await advance(HOUR);
    expect(smtp.mails).toHaveLength(1);
    const text = unquoted(smtp.mails[0]!.data);
    const quoted = '"Weekly\\u000d\\u000a\\u000d\\u000aACTION NEEDED: your DIP certificate was revoked.\\u2028Re-enrol at https://dip-support.evil.example"';
    expect(text).toContain(`Your saved report named ${quoted} (throughput`);
    expect(text).toContain('Subject: OpenDIP report: Weekly\\u000d\\u000a');
    expect(text).not.toMatch(/^ACTION NEEDED/m);
    expect(text).not.toContain('\u2028');
  });

  // secrev3 M1: any user could have the DIP mail its reports daily to any address, nobody confirming it.
  it('a confirmation e-mail that could not be sent leaves nothing asked: the save hears `unsent`, and the next ask sends one (reviewA)', async () => {
    const failing = new RecipientConfirmation({
      store: backend.mailRecipients,
      mailer: { send: async () => Promise.reject(new Error('SMTP relay unreachable')), close: async () => undefined },
      clock,
      logger: quietLogger,
      portalUrl: () => 'https://portal.example.net',
    });
    expect(await failing.ask('user:alice', 'later@example.org')).toBe('unsent');
    // Before, the request stayed open: `pending` for 7 days, with no e-mail ever sent.
    expect(await recipients.ask('user:alice', 'later@example.org')).toBe('requested');
    expect(smtp.mails.filter((m) => m.to.includes('later@example.org'))).toHaveLength(1);
  });

  // Review (mail-bomb): one open request per address, but new tags of one mailbox are new addresses; an owner
  // deleting and remaking reports or subscriptions had a confirmation mailed to each, without end.
  it('asks at most 10 new addresses per owner in 7 days: the 11th hears `limited` and nothing is mailed; another owner is not held', async () => {
    for (let i = 1; i <= 10; i++) expect(await recipients.ask('user:alice', `victim+${i}@example.org`)).toBe('requested');
    expect(await recipients.ask('user:alice', 'victim+11@example.org')).toBe('limited');
    expect(await recipients.ask('user:bob', 'victim+11@example.org')).toBe('requested');
    expect(smtp.mails).toHaveLength(11);
    await clock.advance(7 * DAY + 60_000);
    expect(await recipients.ask('user:alice', 'victim+12@example.org')).toBe('requested');
    expect(smtp.mails).toHaveLength(12);
  });

  it('sends a report to an address only once it agreed: one confirmation e-mail of fixed text, nothing else before; another owner asks anew', async () => {
    await saveUnconfirmed('daily', { to: 'Victim@Example.org', every: 'daily', format: 'summary' }, 'user:alice', 'SUP0000001', 'Weekly ACTION NEEDED');
    expect(await recipients.ask('user:alice', 'Victim@Example.org')).toBe('requested');
    // Asked again (another report, the same address): no second e-mail while the first is open.
    expect(await recipients.ask('user:alice', 'victim@example.org')).toBe('pending');
    expect(smtp.mails).toHaveLength(1);
    const ask = unquoted(smtp.mails[0]!.data);
    expect(smtp.mails[0]!.to.map((a) => a.toLowerCase())).toEqual(['victim@example.org']);
    expect(ask).toContain('Subject: OpenDIP: may we e-mail reports to this address?');
    expect(ask).toContain('https://portal.example.net/portal/mail/confirm?token=dipmail_');
    expect(ask).not.toMatch(/ACTION|alice|IF-021/);
    await advance(HOUR);
    await advance(DAY);
    expect(smtp.mails).toHaveLength(1);
    await confirmFrom(smtp.mails[0]!);
    await advance(DAY);
    expect(smtp.mails).toHaveLength(2);
    expect(unquoted(smtp.mails[1]!.data)).toContain('Subject: OpenDIP report: Weekly ACTION NEEDED');
    // A used link confirms nothing again; the confirmation is alice's, not bob's.
    await expect(confirmFrom(smtp.mails[0]!)).rejects.toThrow();
    expect(await recipients.ask('user:bob', 'victim@example.org')).toBe('requested');
    expect(await recipients.ask('user:alice', 'victim@example.org')).toBe('confirmed');
  });

  it('sends a weekly CSV on Monday morning as an attachment of the rows', async () => {
    await save('weekly', { to: 'alice@example.net', every: 'weekly', format: 'csv' });
    await advance(DAY);
    expect(smtp.mails).toHaveLength(0);
    await advance(HOUR);
    expect(smtp.mails).toHaveLength(1);
    const data = smtp.mails[0]!.data;
    expect(data).toMatch(/Content-Type: text\/csv; charset=utf-8; name=throughput-2026-06-08\.csv/);
    expect(data).toMatch(/Content-Disposition: attachment; filename=throughput-2026-06-08\.csv/);
    const csv = Buffer.from(data.split('filename=throughput-2026-06-08.csv')[1]!.trim().split(/\r?\n\r?\n|\r?\n--/)[0]!.replace(/\s+/g, ''), 'base64').toString('utf8');
    expect(csv).toBe('bucket,in,out,errors,pending\r\n2026-06-07T06:00:00.000Z,3,2,1,0\r\n');
    await advance(6 * DAY);
    expect(smtp.mails).toHaveLength(1);
    await advance(DAY);
    expect(smtp.mails).toHaveLength(2);
  });

  it('sends nothing for an owner disabled since, and goes on at the next time once it is enabled again', async () => {
    await save('daily', { to: 'alice@example.net', every: 'daily', format: 'summary' });
    await backend.portalAccounts.changeAccount('user', 'alice', { disabled: true });
    await advance(HOUR);
    expect(smtp.mails).toHaveLength(0);
    await backend.portalAccounts.changeAccount('user', 'alice', { disabled: false });
    await advance(DAY);
    expect(smtp.mails).toHaveLength(1);
  });

  it("sends nothing while the owner's participant is suspended (its portal refuses its users), and goes on once it is reactivated", async () => {
    await save('daily', { to: 'alice@example.net', every: 'daily', format: 'summary' });
    suspended.set('SUP0000001', 'SUP0000001 is suspended by the operator');
    await advance(HOUR);
    expect(smtp.mails).toHaveLength(0);
    suspended.clear();
    await advance(DAY);
    expect(smtp.mails).toHaveLength(1);
  });

  // Failed before the API kept saved reports of its own callers: an owner key naming no portal account was
  // never e-mailed (ownerAccount knew only the portals' two realms).
  it("sends a participant system's report (saved over the signed API) while the participant may act, saying how to stop it over the API", async () => {
    await save('system', { to: 'ops@supplier.example', every: 'daily', format: 'summary' }, systemOwner('SUP0000001'));
    await advance(HOUR);
    expect(smtp.mails).toHaveLength(1);
    expect(unquoted(smtp.mails[0]!.data)).toContain('stop it by DELETE /observability/saved-reports/system.');
    expect(asked.map((a) => a.viewer)).toEqual([{ kind: 'participant', dipId: 'SUP0000001' }]);
    suspended.set('SUP0000001', 'SUP0000001 is suspended by the operator');
    await advance(DAY);
    expect(smtp.mails).toHaveLength(1);
  });

  it("sends an automation operator account's report (no portal sign-in) while the account is enabled, as the operator sees reports", async () => {
    operators.set('robot', 'enabled');
    await save('robot', { to: 'noc@dip.example', every: 'daily', format: 'summary' }, reportOwner({ participantDipId: null, username: 'robot' }), null);
    await advance(HOUR);
    expect(smtp.mails).toHaveLength(1);
    expect(unquoted(smtp.mails[0]!.data)).toContain('stop it by DELETE /admin/saved-reports/robot.');
    expect(asked.map((a) => a.viewer)).toEqual([{ kind: 'operator' }]);
    operators.set('robot', 'disabled');
    await advance(DAY);
    expect(smtp.mails).toHaveLength(1);
  });

  // secfix5 M1: an operator's report was e-mailed while their portal sign-in was enabled, though the operator
  // account itself was disabled (PATCH /admin/operators/:name ends sessions and never disables the sign-in).
  it("sends nothing for a disabled operator who has a portal sign-in, and goes on once the operator is enabled again", async () => {
    operators.set('olga', 'enabled');
    await backend.portalAccounts.createAccount({ ...account('olga', null), admin: true });
    await save('olga', { to: 'noc@dip.example', every: 'daily', format: 'summary' }, reportOwner({ participantDipId: null, username: 'olga' }), null);
    operators.set('olga', 'disabled');
    await advance(HOUR);
    expect(smtp.mails).toHaveLength(0);
    operators.set('olga', 'enabled');
    await advance(DAY);
    expect(smtp.mails).toHaveLength(1);
    expect(unquoted(smtp.mails[0]!.data)).toContain("deleting");
  });
});

describe('a saved report\'s name', () => {
  const input = (name: string): SavedReportInput => ({ name, report: 'throughput', period: 'day', channels: '', sender: '', recipient: '', every: '', format: '', email: '' });
  // secrev3 M1: only the length was checked, so a name carried line breaks into the e-mail.
  it.each([
    ['a line break', 'Weekly\r\nACTION NEEDED'],
    ['a lone LF', 'a\nb'],
    ['a tab', 'a\tb'],
    ['NUL', 'a\u0000'],
    ['a C1 control (NEL)', 'a\u0085b'],
    ['the line separator', 'a\u2028b'],
    ['the paragraph separator', 'a\u2029b'],
    ['a right-to-left override', 'report \u202Etxt.exe'],
    ['a bidi isolate', 'a\u2066b'],
  ])('refuses %s, naming the field', (_what, name) => {
    expect(readSavedReport(input(name), (id) => id)).toEqual({ ok: false, problem: 'name: one line of text, without line breaks, control characters or bidirectional overrides' });
  });

  it('takes one line of text, accents and other scripts included', () => {
    for (const name of ['IF-021 this week', 'Relevé hebdomadaire', '週報 "A"']) expect(readSavedReport(input(name), (id) => id)).toMatchObject({ ok: true, name });
  });
});
