import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import type { MaintenanceEvent } from '../src/ports/alarms.js';
import { adminApi } from './helpers/admin.js';
import { quietLogger, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { startSmtp, type TestSmtp } from './helpers/smtp.js';
import { cliRuns } from './helpers/cli-budget.js';
import { FakeClock } from './helpers/clocks.js';
import { SmtpMailer } from '../src/adapters/mail/smtp-mailer.js';
import { Maintenance, MAINTENANCE_SEND_LEASE_MS, type MaintenanceDeps } from '../src/pipeline/maintenance.js';
import type { MaintenanceOutbox, MaintenanceSend } from '../src/ports/maintenance.js';
import type { MaintenanceNotice } from '../src/domain/maintenance.js';
import { utcAndUk } from '../src/domain/uk-time.js';

/** A plain HTTP receiver for maintenance webhooks (JSON POSTs): records each body it is given. */
async function startJsonReceiver(): Promise<{ url: string; events: MaintenanceEvent[]; close(): Promise<void> }> {
  const events: MaintenanceEvent[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      events.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as MaintenanceEvent);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/maintenance`, events, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('maintenance notices (spec 5.13.5)', () => {
  let t: TestDip;
  let smtp: TestSmtp;
  let hooks: Awaited<ReturnType<typeof startJsonReceiver>>;
  let sup: TestParticipant;
  let lss: TestParticipant;
  let admin: ReturnType<typeof adminApi>;
  const hour = 3_600_000;
  const at = (ms: number) => new Date(ms).toISOString();
  /** A mail's text with quoted-printable's soft line breaks joined (a line of UTC and UK times is long). */
  const unwrapped = (m: { data: string }) => m.data.replace(/=\r?\n/g, '');

  beforeAll(async () => {
    smtp = await startSmtp();
    hooks = await startJsonReceiver();
    t = await startTestDip({
      observability: {
        ...DEFAULTS.observability,
        alarms: { ...DEFAULTS.observability.alarms, smtp: { host: '127.0.0.1', port: smtp.port, secure: false, requireTLS: false, user: null, pass: null, from: 'dip@example.net' } },
      },
    });
    admin = adminApi(t);
    sup = await t.participant('1000000001', ['SUP']);
    lss = await t.participant('3000000001', ['LSS']);
    // The supplier asks for maintenance notices by e-mail and webhook (its alarm subscription, signed call).
    const sub = await sup.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['maintenance'], email: 'ops@supplier.example', webhookUrl: hooks.url }));
    expect(sub.status).toBe(201);
    // The LSS asks too; it does not use IF-002 (a channel-scoped notice for it goes only to those who do).
    expect((await lss.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['maintenance'], email: 'ops@lss.example' }))).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
    await hooks?.close();
  });

  it('published: participants see it on the API, receive it by e-mail over SMTP and by webhook; amended and withdrawn too; each act journalled with before and after', async () => {
    const start = Date.now() + 24 * hour;
    const published = await admin('POST', '/admin/maintenance', { start: at(start), end: at(start + 2 * hour), text: 'Database upgrade: ingest answers 503 for up to ten minutes.' });
    expect(published.status).toBe(201);
    const id = (published.body as { id: string }).id;
    expect(published.body).toMatchObject({ id, version: 1, scope: 'dip', channels: [], state: 'published', start: at(start), end: at(start + 2 * hour) });

    // The participant API (mutual TLS, signed) shows the notice.
    const seen = await sup.client.call<{ notices: Array<{ id: string; text: string; scope: string }> }>('GET', '/maintenance/notices', '');
    expect(seen.status).toBe(200);
    expect(seen.body.notices).toEqual([expect.objectContaining({ id, scope: 'dip', text: 'Database upgrade: ingest answers 503 for up to ten minutes.' })]);

    // Both subscribers get the DIP-wide notice by e-mail; the supplier's webhook gets it too.
    await waitFor(() => smtp.mails.length >= 2 && hooks.events.length >= 1, 15_000, 'the e-mails and the webhook call');
    expect(smtp.mails.map((m) => m.to[0]).sort()).toEqual(['ops@lss.example', 'ops@supplier.example']);
    const mail = smtp.mails.find((m) => m.to[0] === 'ops@supplier.example')!;
    expect(mail.from).toBe('dip@example.net');
    expect(mail.data).toContain('Subject: [DIP maintenance PUBLISHED]');
    expect(unwrapped(mail)).toContain(`window: ${utcAndUk(start)} to ${utcAndUk(start + 2 * hour)}`);
    expect(mail.data).toContain('Database upgrade: ingest answers 503');
    expect(hooks.events[0]).toMatchObject({ type: 'maintenance', kind: 'published', notice: { id, version: 1, scope: 'dip' } });

    // Amended to IF-021 only and an hour later: the supplier (which receives IF-021) is told, and the LSS too (it receives IF-021 by always routing).
    const amended = await admin('PATCH', `/admin/maintenance/${id}`, { start: at(start + hour), end: at(start + 3 * hour), channels: ['if-021'], expectedVersion: 1 });
    expect(amended.status).toBe(200);
    expect(amended.body).toMatchObject({ version: 2, scope: 'channels', channels: ['IF-021'] });
    await waitFor(() => smtp.mails.length >= 4 && hooks.events.length >= 2, 15_000, 'the amendment');
    expect(smtp.mails.slice(2).every((m) => m.data.includes('Subject: [DIP maintenance AMENDED]') && unwrapped(m).includes(`was: ${utcAndUk(start)} to ${utcAndUk(start + 2 * hour)}`))).toBe(true);
    expect(hooks.events[1]).toMatchObject({ kind: 'amended', notice: { id, version: 2, channels: ['IF-021'] } });
    // A channel filter on the API: IF-021's notice, none for IF-002.
    expect((await sup.client.call<{ notices: unknown[] }>('GET', '/maintenance/notices?channel=IF-021', '')).body.notices).toHaveLength(1);
    expect((await sup.client.call<{ notices: unknown[] }>('GET', '/maintenance/notices?channel=IF-002', '')).body.notices).toEqual([]);
    // A misspelt filter, or a channel this DIP has not, is refused naming it: each answered every notice, or none.
    const typo = await sup.client.call('GET', '/maintenance/notices?chanel=IF-021', '');
    expect([typo.status, typo.body.messageArray[0]!.help]).toEqual([400, 'chanel is not a filter of the notices (query string): the names are channel']);
    const unknown = await sup.client.call('GET', '/maintenance/notices?channel=IF-999', '');
    expect([unknown.status, unknown.body.messageArray[0]!.help]).toEqual([400, "channel (query string) 'IF-999' is not a channel of this DIP"]);

    // A stale amendment (made against version 1) is refused and changes nothing.
    const stale = await admin('PATCH', `/admin/maintenance/${id}`, { text: 'lost', expectedVersion: 1 });
    expect(stale.status).toBe(409);
    expect(stale.body.error).toContain('version 2');

    // Withdrawn: gone from the participant API, every subscriber told.
    const withdrawn = await admin('POST', `/admin/maintenance/${id}/withdraw`);
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.body).toMatchObject({ version: 3, state: 'withdrawn' });
    await waitFor(() => smtp.mails.length >= 6 && hooks.events.length >= 3, 15_000, 'the withdrawal');
    expect(smtp.mails.slice(4).every((m) => m.data.includes('Subject: [DIP maintenance WITHDRAWN]') && m.data.includes('will not take place'))).toBe(true);
    expect(hooks.events[2]).toMatchObject({ kind: 'withdrawn', notice: { id, state: 'withdrawn' } });
    expect((await sup.client.call<{ notices: unknown[] }>('GET', '/maintenance/notices', '')).body.notices).toEqual([]);
    // The operator still sees every version.
    expect(((await admin('GET', `/admin/maintenance/${id}`)).body as Array<{ version: number; state: string }>).map((v) => [v.version, v.state])).toEqual([
      [1, 'published'],
      [2, 'published'],
      [3, 'withdrawn'],
    ]);

    // Journalled as operator acts, with the notice before and after.
    const journal = (await admin('GET', `/admin/journal?target=${id}`)).body as Array<{ actor: string; action: string; before: { version: number } | null; after: { version: number; state: string } }>;
    expect(journal.map((e) => [e.actor, e.action, e.before?.version ?? null, e.after.version])).toEqual([
      ['bootstrap', 'maintenance.withdraw', 2, 3],
      ['bootstrap', 'maintenance.amend', 1, 2],
      ['bootstrap', 'maintenance.publish', null, 1],
    ]);
  });

  it('a notice for channels a participant does not use is not sent to it, but is on the API', async () => {
    const mailsBefore = smtp.mails.length;
    const start = Date.now() + 48 * hour;
    // IF-002 goes to suppliers, not to the LSS.
    const made = await admin('POST', '/admin/maintenance', { start: at(start), end: at(start + hour), text: 'IF-002 reindex', channels: ['IF-002'] });
    expect(made.status).toBe(201);
    await waitFor(() => smtp.mails.length >= mailsBefore + 1, 15_000, 'the e-mail');
    expect(smtp.mails.slice(mailsBefore).map((m) => m.to[0])).toEqual(['ops@supplier.example']);
    expect((await lss.client.call<{ notices: Array<{ channels: string[] }> }>('GET', '/maintenance/notices', '')).body.notices.map((n) => n.channels)).toEqual([['IF-002']]);
  });

  it("reads the channel filter's name in any case, and once, by the rule pull's and the publications' query strings follow (src/api/query.ts)", async () => {
    const start = Date.now() + 60 * hour;
    const made = await admin('POST', '/admin/maintenance', { start: at(start), end: at(start + hour), text: 'IF-002 archive move', channels: ['IF-002'] });
    expect(made.status).toBe(201);
    const id = (made.body as { id: string }).id;
    const listed = async (query: string) => {
      const r = await sup.client.call<{ notices?: Array<{ id: string }>; messageArray?: Array<{ help: string }> }>('GET', `/maintenance/notices?${query}`, '');
      return { status: r.status, ids: r.body.notices?.map((n) => n.id) ?? null, help: r.body.messageArray?.[0]?.help ?? null };
    };
    // Another spelling of the name filters as `channel` does (it was ignored, or refused, before).
    expect((await listed('CHANNEL=if-002')).ids).toContain(id);
    expect((await listed('Channel=IF-021')).ids).not.toContain(id);
    expect((await listed('channel=IF-021')).ids).not.toContain(id);
    // Given twice, in one spelling or two: which was meant cannot be known, so it is refused naming it.
    expect(await listed('channel=IF-002&Channel=IF-021')).toEqual({ status: 400, ids: null, help: 'channel (query string) is given 2 times (as channel and Channel; names are read in any case): give it once' });
    expect(await listed('channel=IF-002&channel=IF-002')).toEqual({ status: 400, ids: null, help: 'channel (query string) is given 2 times: give it once' });
    // Not a channel ID: refused naming it, as before.
    expect(await listed('Channel=nonsense')).toEqual({ status: 400, ids: null, help: "channel (query string) 'nonsense' is not a channel ID (two to four letters, a hyphen and three digits, e.g. IF-021)" });
    // A long value is echoed cut to 40 characters, as other query values are: whole, it pushed the reason past the help's 500.
    expect((await listed(`channel=${'x'.repeat(600)}`)).help).toBe(`channel (query string) '${'x'.repeat(40)}' is not a channel ID (two to four letters, a hyphen and three digits, e.g. IF-021)`);
    expect((await admin('POST', `/admin/maintenance/${id}/withdraw`)).status).toBe(200);
  });

  it('refuses a bad notice naming each field and why, and stores nothing', async () => {
    const before = ((await admin('GET', '/admin/maintenance')).body as unknown[]).length;
    const now = Date.now();
    const bad = await admin('POST', '/admin/maintenance', { start: at(now + 2 * hour), end: at(now + hour), text: ' ', channels: ['IF-999'] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain('end: ');
    expect(bad.body.error).toContain('is not after start');
    expect(bad.body.error).toContain('text: ');
    expect(bad.body.error).toContain("channels[0]: 'IF-999' is not a channel of this DIP");
    const zoneless = await admin('POST', '/admin/maintenance', { start: '2026-12-05 02:00', end: at(now + hour), text: 'x' });
    expect(zoneless.status).toBe(400);
    expect(zoneless.body.error).toContain("start: '2026-12-05 02:00' is not an ISO-8601 date-time with a zone");
    const past = await admin('POST', '/admin/maintenance', { start: at(now - 2 * hour), end: at(now - hour), text: 'x' });
    expect(past.status).toBe(400);
    expect(past.body.error).toContain('has already passed');
    expect(((await admin('GET', '/admin/maintenance')).body as unknown[]).length).toBe(before);
    expect((await admin('POST', '/admin/maintenance/MN-404/withdraw')).status).toBe(404);
    // A viewer may read notices but not publish them.
    const viewer = await admin('POST', '/admin/operators', { name: 'vera', role: 'viewer', automation: true });
    const asViewer = adminApi(t, (viewer.body as { token: string }).token);
    expect((await asViewer('GET', '/admin/maintenance')).status).toBe(200);
    expect((await asViewer('POST', '/admin/maintenance', { start: at(now + hour), end: at(now + 2 * hour), text: 'x' })).status).toBe(403);
  });

  it('dip maintenance publish and withdraw, from the command line as the operator', cliRuns(3), async () => {
    const dip = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'maintenance', ...args], { env: { ...process.env, DIP_DATA_DIR: t.config.dataDir, DIP_ADMIN_PORT: String(t.dip.adminPort) } }, (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, stdout, stderr }),
        );
      });
    const start = Date.now() + 72 * hour;
    const made = await dip('publish', '--start', at(start), '--end', at(start + hour), '--text', 'Certificate authority renewal', '--channels', 'IF-021,IF-002');
    expect(made.stderr).toBe('');
    const notice = JSON.parse(made.stdout) as { id: string; channels: string[] };
    expect(notice.channels).toEqual(['IF-002', 'IF-021']);
    expect((await sup.client.call<{ notices: Array<{ id: string }> }>('GET', '/maintenance/notices', '')).body.notices.map((n) => n.id)).toContain(notice.id);
    const bad = await dip('publish', '--start', at(start), '--end', at(start - hour), '--text', 'x');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('is not after start');
    expect((await dip('withdraw', notice.id)).code).toBe(0);
    expect((await sup.client.call<{ notices: Array<{ id: string }> }>('GET', '/maintenance/notices', '')).body.notices.map((n) => n.id)).not.toContain(notice.id);
  });
});

/** The outbox as the store keeps it (test/contract/maintenance.contract.ts), in memory: shared by the "nodes" of a test. */
function memoryOutbox(): MaintenanceOutbox & { rows: Map<string, MaintenanceSend> } {
  const rows = new Map<string, MaintenanceSend>();
  return {
    rows,
    add: async (sends) => sends.forEach((x) => rows.has(x.id) || rows.set(x.id, x)),
    due: async (now, limit) => [...rows.values()].filter((x) => x.dueAt <= now).sort((a, b) => a.dueAt - b.dueAt || a.id.localeCompare(b.id)).slice(0, limit),
    claim: async (id, dueAt, leaseUntil) => {
      const row = rows.get(id);
      if (row?.dueAt !== dueAt) return false;
      rows.set(id, { ...row, dueAt: leaseUntil });
      return true;
    },
    done: async (id) => void rows.delete(id),
  };
}

describe('maintenance announcements are sent after the answer (many participants, a slow SMTP relay)', () => {
  it('answers at once naming how many addresses, sends each once, 8 at a time, and stop waits for the sends', async () => {
    const smtp = await startSmtp({ holding: true });
    const mailer = new SmtpMailer({ host: '127.0.0.1', port: smtp.port, secure: false, requireTLS: false, user: null, pass: null, from: 'dip@example.net' });
    const clock = new FakeClock();
    const notices: MaintenanceNotice[] = [];
    const contacts = Array.from({ length: 20 }, (_, i) => ({ dipId: `10000000${String(i).padStart(2, '0')}`, email: `admin${i}@p${i}.example` }));
    const maintenance = new Maintenance({
      store: { put: async (n) => void notices.push(n), list: async () => notices.filter((n) => n.version === 1), history: async (id) => notices.filter((n) => n.id === id) },
      outbox: memoryOutbox(),
      journal: { append: async () => 1, entries: async () => [] },
      clock,
      logger: quietLogger,
      knownChannel: () => true,
      channelsOf: () => new Set(['IF-021']),
      // One address twice (another case) and a subscriber that is also a contact: each told once.
      contacts: () => [...contacts, { dipId: '1000000000', email: 'ADMIN0@p0.example' }],
      announce: { subscriptions: async () => [{ id: 'S1', owner: 'operator', rules: ['maintenance'], email: 'admin1@p1.example', webhookUrl: null, createdAt: 0 }], channel: { email: (to, subject, text) => mailer.send(to, subject, text), webhook: async () => undefined } },
    });
    try {
      const start = clock.now() + 86_400_000;
      // Answered while the relay holds every message: the operator's request does not wait for the sends.
      const made = await maintenance.publish({ start: new Date(start).toISOString(), end: new Date(start + 3_600_000).toISOString(), text: 'upgrade', channels: null }, 'op');
      expect(made).toMatchObject({ id: 'MN-1', announcedTo: 20 });
      // At most 8 under way at once, however long the relay takes.
      await waitFor(() => smtp.held() === 8, 15_000, 'eight messages held by the relay');
      let stopped = false;
      const stopping = maintenance.stop().then(() => (stopped = true));
      await new Promise((r) => setImmediate(r));
      expect(stopped).toBe(false);
      smtp.release();
      await stopping;
      // Stop returned only once every address was sent to, each once.
      expect(smtp.mails.map((m) => m.to[0]).sort()).toEqual(contacts.map((c) => c.email).sort());
    } finally {
      smtp.release();
      await mailer.close();
      await smtp.close();
    }
  });
});

// The sends were a promise chain in the acting node's memory: a node that died part-way through an
// announcement lost the rest (logged nowhere, told to no one).
describe('maintenance announcements outlive the node that took the act', () => {
  it("another node finishes a dead node's announcement: what it had not claimed at once, what it had claimed after the lease; each address once", async () => {
    const clock = new FakeClock();
    const outbox = memoryOutbox();
    const notices: MaintenanceNotice[] = [];
    const contacts = Array.from({ length: 20 }, (_, i) => ({ dipId: `10000000${String(i).padStart(2, '0')}`, email: `admin${i}@p${i}.example` }));
    const node = (email: (to: string) => Promise<void>): Maintenance =>
      new Maintenance({
        store: { put: async (n) => void notices.push(n), list: async () => notices.filter((n) => n.version === 1), history: async (id) => notices.filter((n) => n.id === id) },
        outbox,
        journal: { append: async () => 1, entries: async () => [] },
        clock,
        logger: quietLogger,
        knownChannel: () => true,
        channelsOf: () => new Set(['IF-021']),
        contacts: () => contacts,
        announce: { subscriptions: async () => [], channel: { email, webhook: async () => undefined } } satisfies MaintenanceDeps['announce'],
      });
    // Node A takes the act and dies sending: its relay never answers, and it is never stopped.
    const hung: string[] = [];
    const a = node((to) => {
      hung.push(to);
      return new Promise<void>(() => undefined);
    });
    const start = clock.now() + 86_400_000;
    const made = await a.publish({ start: new Date(start).toISOString(), end: new Date(start + 3_600_000).toISOString(), text: 'upgrade', channels: null }, 'op');
    expect(made.announcedTo).toBe(20);
    await waitFor(() => hung.length === 8, 5_000, 'node A to claim its first eight');
    // Node B (another node, or A restarted) looks at start: the twelve A never claimed go at once.
    const sent: string[] = [];
    const b = node(async (to) => void sent.push(to));
    b.start();
    try {
      await waitFor(() => sent.length === 12, 5_000, 'node B to send what node A left unclaimed');
      expect(sent.some((to) => hung.includes(to))).toBe(false);
      // A's eight are its own until the lease ends; then B's next look sends them.
      await clock.advance(MAINTENANCE_SEND_LEASE_MS + 60_000);
      await waitFor(() => sent.length === 20, 5_000, "node B to send node A's eight after their lease");
      expect([...sent].sort()).toEqual(contacts.map((c) => c.email).sort());
      expect(outbox.rows.size).toBe(0);
    } finally {
      await b.stop();
    }
  });
});
