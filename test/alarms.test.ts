import { utcAndUk } from '../src/domain/uk-time.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deadLetterAlarms, haltedQueueAlarms, queueAlarms, webhookFailingAlarms } from '../src/pipeline/alarm-sources.js';
import { StoreError } from '../src/ports/errors.js';
import type { DeadLetter } from '../src/ports/dead-letters.js';
import { Alarms, createSubscription, isSharedCondition, MAX_SUBSCRIPTIONS_PER_PARTICIPANT } from '../src/pipeline/alarms.js';
import { queueDepths } from '../src/pipeline/metrics.js';
import { QueueWorker } from '../src/pipeline/queue-worker.js';
import type { QueueEntry, QueueRef, Settlement } from '../src/ports/message-log.js';
import { workerDeps } from './helpers/worker-deps.js';
import type { AlarmChannel, AlarmCondition, AlarmNotice, AlarmSubscription } from '../src/ports/alarms.js';
import type { AlarmNotifierLease, NotifiedAlarm } from '../src/ports/leases.js';
import { FakeClock, settle } from './helpers/clocks.js';
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { alarmScope } from '../src/pipeline/mail-recipients.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { buildIF021 } from '../src/sim/messages.js';
import { rotateParticipantCertificate } from '../src/pipeline/participants.js';
import { issueParticipantCertificate } from '../src/security/pki.js';
import type { ReceivedCall } from '../src/client/webhook-receiver.js';
import { quietLogger, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { startSmtp, type TestSmtp } from './helpers/smtp.js';

describe('alarms (spec 5.11.4)', () => {
  let t: TestDip;
  let smtp: TestSmtp;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let answer = 400;
  let token: string;
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`http://127.0.0.1:${t.dip.adminPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  beforeAll(async () => {
    smtp = await startSmtp();
    t = await startTestDip({
      observability: {
        ...DEFAULTS.observability,
        alarms: { ...DEFAULTS.observability.alarms, evaluateIntervalMs: 100, smtp: { host: '127.0.0.1', port: smtp.port, secure: false, requireTLS: false, user: null, pass: null, from: 'dip@example.net' } },
      },
    });
    token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    const r = await t.receiver(() => answer);
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${r.url}dip` })).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  /** What the holder of `address` opening its confirmation link does, in the store. */
  const confirmAddress = async (owner: string, address: string): Promise<void> => {
    const tokenHash = createHash('sha256').update(`confirm-${owner}-${address}`).digest('hex');
    const now = Date.now();
    expect(await t.dip.backend.mailRecipients.ask({ scope: alarmScope(owner), address, tokenHash, requestedAt: now, expiresAt: now + 60_000, confirmedAt: null }, now, { since: 0, max: 1_000 })).toBe('requested');
    expect(await t.dip.backend.mailRecipients.confirm(tokenHash, now)).toBeDefined();
  };

  // A participant's subscription could have the DIP mail any address its notices (secrev3 M1, as saved
  // reports could): its address is asked once, fixed text, and told nothing until it agreed.
  it("an unconfirmed participant's address is sent one confirmation e-mail, not the notices", async () => {
    const ldso = await t.participant('3000000001', ['LDSO']);
    // Its certificate's alarm raised before the subscription exists (as an evaluation every 100 ms did
    // under load: the test then waited for an e-mail a raised alarm never sends again).
    await t.dip.alarms!.evaluate();
    expect((await ldso.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['certificate-expiring'], email: 'third-party@victim.example' }))).status).toBe(201);
    // A subscription is sent what is raised after it: its new certificate (29 days) is expiring, an alarm it may see, at once.
    const renewed = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 3000000001', dipIds: [ldso.dipId], environment: 'DEV', validDays: 29 });
    await rotateParticipantCertificate(t.dip.backend.registry, { dipId: ldso.dipId, certificatePem: renewed.certPem, overlapMs: 0 });
    await waitFor(() => smtp.mails.some((m) => m.to[0] === 'third-party@victim.example'), 15_000, 'the confirmation e-mail');
    await t.dip.alarms!.evaluate();
    const toVictim = smtp.mails.filter((m) => m.to[0] === 'third-party@victim.example');
    expect(toVictim).toHaveLength(1);
    expect(toVictim[0]!.data).toContain('Subject: OpenDIP: may we e-mail alarm notices to this address?');
    expect(toVictim[0]!.data).not.toContain('DIP alarm');
    // Its link opens a page that asks for alarm notices, and says, once agreed, how they stop (review: it spoke of reports).
    const link = /\/portal\/mail\/confirm\?token=[\w-]+/.exec(toVictim[0]!.data.replace(/=\r?\n/g, '').replace(/=3D/g, '='))![0];
    const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
    const asked = await (await request(`${t.dip.portalUrl}${link}`, { dispatcher: agent })).body.text();
    expect(asked).toContain('alarm notices to be e-mailed to your address');
    expect(asked).not.toMatch(/report/i);
    const agreed = await request(`${t.dip.portalUrl}/portal/mail/confirm`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: t.dip.portalUrl },
      body: new URLSearchParams({ token: new URL(link, t.dip.portalUrl).searchParams.get('token')! }).toString(),
    });
    const after = await agreed.body.text();
    expect(agreed.statusCode).toBe(200);
    expect(after).toContain('stop them by deleting the alarm subscription');
    expect(after).not.toMatch(/report/i);
    await agent.close();
  });

  it('a dead letter raises an alarm e-mailed over SMTP, and its requeue sends the resolved notice', async () => {
    const made = await admin('POST', '/admin/alarms/subscriptions', { rules: ['dead-letter'], email: 'ops@example.net' });
    expect(made.status).toBe(201);
    // A webhook subscription too, received by a participant's own receiver: every notice it is sent must
    // verify with the DIP's certificate chain, as a webhook call does (notices were unsigned, so forgeable).
    const notices: ReceivedCall[] = [];
    const hook = await t.receiver((c) => {
      notices.push(c);
      return c.signature.ok ? 200 : 401;
    });
    expect((await admin('POST', '/admin/alarms/subscriptions', { rules: ['dead-letter'], webhookUrl: `${hook.url}alarms` })).status).toBe(201);
    // The supplier subscribes on the participant listener too (signed call) and sees only its own.
    const own = await sup.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['dead-letter', 'webhook-failing'], email: 'sup@example.net' }));
    expect(own.status).toBe(201);
    // Its address agreed (test 'an unconfirmed address' below has one that did not).
    await confirmAddress(sup.dipId, 'sup@example.net');
    expect((await sds.client.call('GET', '/observability/alarm-subscriptions', '')).body).toEqual({ subscriptions: [] });

    // The recipient refuses the message (400): it is dead-lettered at once.
    expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'dl1' })])).status).toBe(201);
    await waitFor(() => smtp.mails.filter((m) => /Subject: \[DIP alarm RAISED\]/.test(m.data)).length >= 2, 15_000, 'the alarm e-mails');
    await waitFor(() => notices.length >= 1, 15_000, 'the raised notice by webhook');
    expect(notices[0]!.signature).toMatchObject({ ok: true, certificate: { pem: t.dip.signing.certificatePem() } });
    const raised = smtp.mails.filter((m) => /Subject: \[DIP alarm RAISED\]/.test(m.data));
    expect(raised.map((m) => m.to[0]).sort()).toEqual(['ops@example.net', 'sup@example.net']);
    expect(raised[0]!.from).toBe('dip@example.net');
    expect(raised[0]!.data).toContain('rule: dead-letter');
    expect(raised[0]!.data).toContain(`key: dead-letter:${sup.dipId}/IF-021`);
    // Each says what to do, to whom it is sent: the operator where to look and how to requeue, the
    // supplier what is in its own hands.
    // As sent: quoted-printable (long lines folded with a soft break `=`, an `=` written `=3D`).
    const mailTo = (to: string) => raised.find((m) => m.to[0] === to)!.data.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    expect(mailTo('ops@example.net')).toContain('what to do: dip dead-letters list (GET /admin/dead-letters) gives each one its reason');
    expect(mailTo('sup@example.net')).toContain('what to do: the DIP gave up delivering them');
    const current = (await (await admin('GET', '/admin/alarms')).json()) as { alarms: Array<{ key: string; action: string }> };
    expect(current.alarms.map((a) => a.key)).toContain(`dead-letter:${sup.dipId}/IF-021`);
    expect(current.alarms.find((a) => a.key === `dead-letter:${sup.dipId}/IF-021`)!.action).toMatch(/^dip dead-letters list .* dip dead-letters requeue delivers them again/);
    const supAlarms = (await sup.client.call<{ alarms: Array<{ key: string; action: string }> }>('GET', '/observability/alarms', '')).body.alarms;
    expect(supAlarms.map((a) => a.key)).toContain(`dead-letter:${sup.dipId}/IF-021`);
    expect(supAlarms[0]!.action).toMatch(/^the DIP gave up delivering them .*dip replay --requeue/);
    // None of the dead letter's (its own certificate, issued for 29 days, is expiring: read when it registered).
    expect(((await sds.client.call<unknown>('GET', '/observability/alarms', '')).body as { alarms: Array<{ rule: string }> }).alarms.filter((a) => a.rule !== 'certificate-expiring')).toEqual([]);

    // The recipient is fixed; the operator requeues: the condition clears and the resolved notice follows.
    answer = 200;
    const dead = (await (await admin('GET', `/admin/dead-letters?recipient=${sup.dipId}&channel=IF-021`)).json()) as Array<{ seq: number; transactionId: string }>;
    expect(dead).toHaveLength(1);
    expect((await admin('POST', '/admin/dead-letters/requeue', { recipientDipId: sup.dipId, channel: 'IF-021' })).status).toBe(200);
    // Journalled with what it requeued (it said only "POST /admin/dead-letters/requeue", before and after null).
    const journalled = (await (await admin('GET', `/admin/journal?target=${sup.dipId}/IF-021`)).json()) as Array<{ action: string; before: unknown; after: unknown; status: number }>;
    expect(journalled.find((e) => e.action === 'dead-letters.requeue')).toMatchObject({
      before: { state: 'dead', count: 1, letters: [{ seq: dead[0]!.seq, transactionId: dead[0]!.transactionId }] },
      after: { state: 'requeued', count: 1, positions: [dead[0]!.seq], skipped: [] },
      status: 200,
    });
    await waitFor(() => smtp.mails.filter((m) => /Subject: \[DIP alarm RESOLVED\]/.test(m.data)).length >= 2, 15_000, 'the resolved e-mails');
    await waitFor(() => notices.length >= 2, 15_000, 'the resolved notice by webhook');
    expect(notices.map((c) => c.signature.ok)).toEqual([true, true]);
    const resolved = smtp.mails.filter((m) => /Subject: \[DIP alarm RESOLVED\]/.test(m.data));
    expect(resolved.map((m) => m.to[0]).sort()).toEqual(['ops@example.net', 'sup@example.net']);
    expect(resolved[0]!.data).toMatch(/resolved: \d{4}-/);
    expect(((await (await admin('GET', '/admin/alarms')).json()) as { alarms: Array<{ rule: string }> }).alarms.filter((a) => a.rule !== 'certificate-expiring')).toEqual([]);
  });

  // secrev3 M2: a viewer read every webhookUrl whole (its ?code= key) and every e-mail address.
  it('lists subscriptions with webhook URLs in their shown form to every operator, and e-mail addresses held back from viewers; a participant reads its own URLs shown too', async () => {
    const hookUrl = 'https://hooks.example.com/alarms?code=s3cr3t-key&x=1';
    expect((await admin('POST', '/admin/alarms/subscriptions', { rules: ['storage'], webhookUrl: hookUrl, email: 'oncall@example.net' })).status).toBe(201);
    expect((await sup.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['dead-letter'], webhookUrl: 'https://sup.example.com/a?sig=sup-s3cr3t' }))).status).toBe(201);
    const viewerToken = ((await (await admin('POST', '/admin/operators', { name: 'vera', role: 'viewer', automation: true })).json()) as { token: string }).token;
    const asViewer = await fetch(`http://127.0.0.1:${t.dip.adminPort}/admin/alarms/subscriptions`, { headers: { authorization: `Bearer ${viewerToken}` } });
    const seen = await asViewer.text();
    expect(asViewer.status).toBe(200);
    expect(seen).not.toContain('s3cr3t');
    expect(seen).not.toContain('@example.net');
    const listed = (JSON.parse(seen) as { subscriptions: Array<{ rules: string[]; email: string | null; webhookUrl: string | null }> }).subscriptions;
    expect(listed.find((x) => x.rules.includes('storage'))).toMatchObject({ webhookUrl: 'https://hooks.example.com/alarms?code=…&x=…', email: '(held back from viewers)' });
    // The admin token reads the addresses, but the URLs as shown too: the key is the subscriber's.
    const byAdmin = await (await admin('GET', '/admin/alarms/subscriptions')).text();
    expect(byAdmin).not.toContain('s3cr3t');
    expect(byAdmin).toContain('oncall@example.net');
    expect(JSON.stringify((await sup.client.call('GET', '/observability/alarm-subscriptions', '')).body)).not.toContain('sup-s3cr3t');
    // Journalled with the subscription (it said only "POST /admin/alarms/subscriptions"): the URL as shown,
    // the address held back from the viewer as the list holds it back.
    const made = listed.find((x) => x.rules.includes('storage')) as { id?: string };
    const journal = await fetch(`http://127.0.0.1:${t.dip.adminPort}/admin/journal?action=alarm-subscription.create`, { headers: { authorization: `Bearer ${viewerToken}` } });
    const entries = (await journal.json()) as Array<{ target: string; after: { rules: string[]; webhookUrl: string; email: string } }>;
    expect(entries.find((e) => e.after.rules.includes('storage'))).toMatchObject({ target: made.id, after: { webhookUrl: 'https://hooks.example.com/alarms?code=…&x=…', email: '(held back from viewers)' } });
    expect(JSON.stringify(await (await admin('GET', '/admin/journal?action=alarm-subscription.create')).json())).not.toContain('s3cr3t');
  });

  it('refuses a subscription with nowhere to send, or an unknown rule, naming why', async () => {
    const none = await admin('POST', '/admin/alarms/subscriptions', { rules: ['dead-letter'] });
    expect(none.status).toBe(400);
    expect(await none.text()).toContain('give email, webhookUrl or both');
    const bad = await sup.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['latency-on-mars'], email: 'a@b.c' }));
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('rules');
  });

  it("caps a participant's subscriptions, even sent all at once: each is a mailbox or URL every notice goes to, so without a cap one participant could point thousands at a third party's", async () => {
    const subscribe = (i: number) => sds.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['maintenance', 'webhook-failing'], email: `victim+${i}@example.org` }));
    const answers = await Promise.all(Array.from({ length: MAX_SUBSCRIPTIONS_PER_PARTICIPANT + 5 }, (_, i) => subscribe(i)));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(MAX_SUBSCRIPTIONS_PER_PARTICIPANT);
    const refused = answers.filter((a) => a.status !== 201);
    expect(refused.map((a) => a.status)).toEqual([400, 400, 400, 400, 400]);
    expect(JSON.stringify(refused[0]!.body)).toContain(`at most ${MAX_SUBSCRIPTIONS_PER_PARTICIPANT} alarm subscriptions`);
    const mine = (await sds.client.call<{ subscriptions: Array<{ id: string }> }>('GET', '/observability/alarm-subscriptions', '')).body.subscriptions;
    expect(mine).toHaveLength(MAX_SUBSCRIPTIONS_PER_PARTICIPANT);
    // Another participant's allowance is its own; one removed makes room for one more.
    expect((await sup.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['maintenance'], email: 'sup-ops@example.net' }))).status).toBe(201);
    expect((await sds.client.call('DELETE', `/observability/alarm-subscriptions/${mine[0]!.id}`, '')).status).toBe(204);
    expect((await subscribe(99)).status).toBe(201);
    expect((await subscribe(100)).status).toBe(400);
  });

  it("a participant's own dead-letter threshold (spec 5.11): kept and answered by the API, refused out of bounds naming the field, and its notice e-mailed over SMTP to that subscription alone, naming whose threshold held", async () => {
    const thresholds = { deadLetters: { count: 0, windowMinutes: 60 } };
    const made = await sup.client.call<{ id: string; thresholds: unknown }>('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['dead-letter'], email: 'sup-threshold@example.net', thresholds }));
    await confirmAddress(sup.dipId, 'sup-threshold@example.net');
    expect(made.status).toBe(201);
    expect(made.body.thresholds).toEqual(thresholds);
    const id = made.body.id;
    const listed = (await sup.client.call<{ subscriptions: Array<{ id: string; thresholds?: unknown }> }>('GET', '/observability/alarm-subscriptions', '')).body.subscriptions;
    expect(listed.find((x) => x.id === id)!.thresholds).toEqual(thresholds);
    expect(listed.filter((x) => x.id !== id).map((x) => x.thresholds)).toEqual(listed.filter((x) => x.id !== id).map(() => undefined));
    const tooLow = await sup.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['queue-age'], email: 'a@b.example', thresholds: { queueAgeMinutes: 0 } }));
    expect(tooLow.status).toBe(400);
    expect(JSON.stringify(tooLow.body)).toContain('queueAgeMinutes');
    const belowOperator = await sup.client.call('POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['delivery-latency'], email: 'a@b.example', thresholds: { deliveryLatencySeconds: 5 } }));
    expect(belowOperator.status).toBe(400);
    expect(JSON.stringify(belowOperator.body)).toContain("at least 30 s, the DIP's own delivery latency threshold");
    // The operator sets one for a participant too, through the admin route.
    const forSup = await admin('POST', '/admin/alarms/subscriptions', { owner: sup.dipId, rules: ['queue-age'], email: 'sup-age@example.net', thresholds: { queueAgeMinutes: 5, channels: ['IF-021'] } });
    expect(forSup.status).toBe(201);
    expect(((await forSup.json()) as { thresholds: unknown }).thresholds).toEqual({ queueAgeMinutes: 5, channels: ['IF-021'] });

    answer = 400;
    expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'dl2' })])).status).toBe(201);
    const mine = () => smtp.mails.filter((m) => m.to[0] === 'sup-threshold@example.net');
    await waitFor(() => mine().length >= 1, 15_000, "the threshold's notice");
    const data = mine()[0]!.data.replace(/\r\n /g, ' ').replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    expect(data).toContain(`Subject: [DIP alarm RAISED] dead-letter (critical): ${sup.dipId} / IF-021`);
    expect(data).toContain(`Alarm raised: 1 message for ${sup.dipId} / IF-021 were dead-lettered within 60 min, more than 0`);
    expect(data).toContain(`key: dead-letter:${sup.dipId}/IF-021@subscription:${id}`);
    expect(data).toContain(`threshold: ${sup.dipId}'s subscription ${id} (dead-letter: more than 0 in 60 min)`);
    expect(data).toContain("(the DIP's own: any dead letter still dead)");
    // Listed to the participant, not to the operator (whose own view is the operator's thresholds).
    const supKeys = (await sup.client.call<{ alarms: Array<{ key: string }> }>('GET', '/observability/alarms', '')).body.alarms.map((a) => a.key);
    expect(supKeys).toContain(`dead-letter:${sup.dipId}/IF-021@subscription:${id}`);
    const opsKeys = ((await (await admin('GET', '/admin/alarms')).json()) as { alarms: Array<{ key: string }> }).alarms.map((a) => a.key);
    expect(opsKeys).toContain(`dead-letter:${sup.dipId}/IF-021`);
    expect(opsKeys.filter((k) => k.includes('@subscription:'))).toEqual([]);
    // The operator's dead-letter notice did not go to the subscription holding the rule to its own threshold.
    expect(mine().every((m) => m.data.includes('@subscription:'))).toBe(true);
    answer = 200;
    const dead = (await (await admin('GET', `/admin/dead-letters?recipient=${sup.dipId}&channel=IF-021`)).json()) as Array<{ seq: number; transactionId: string }>;
    expect(dead).toHaveLength(1);
    expect((await admin('POST', '/admin/dead-letters/requeue', { recipientDipId: sup.dipId, channel: 'IF-021' })).status).toBe(200);
    // Journalled with what it requeued (it said only "POST /admin/dead-letters/requeue", before and after null).
    const journalled = (await (await admin('GET', `/admin/journal?target=${sup.dipId}/IF-021`)).json()) as Array<{ action: string; before: unknown; after: unknown; status: number }>;
    expect(journalled.find((e) => e.action === 'dead-letters.requeue')).toMatchObject({
      before: { state: 'dead', count: 1, letters: [{ seq: dead[0]!.seq, transactionId: dead[0]!.transactionId }] },
      after: { state: 'requeued', count: 1, positions: [dead[0]!.seq], skipped: [] },
      status: 200,
    });
    await waitFor(() => mine().some((m) => /Subject: \[DIP alarm RESOLVED\]/.test(m.data)), 15_000, "the threshold's resolved notice");
  });
});

describe("the cap on a participant's subscriptions, over a store that answers slowly (PostgreSQL)", () => {
  it('counts one creation at a time per owner, so a burst cannot all read the same count', async () => {
    const stored: AlarmSubscription[] = [];
    // Each list is answered a few turns of the event loop later, as a database across a network answers.
    const store = {
      list: async (owner?: string) => {
        await settle(2);
        return stored.filter((x) => x.owner === owner);
      },
      put: async (x: AlarmSubscription) => {
        await settle(1);
        stored.push(x);
      },
    };
    const deps = { environment: 'DEV', subscriptions: store, checkUrl: async () => null, now: () => 0 };
    const made = await Promise.all(Array.from({ length: MAX_SUBSCRIPTIONS_PER_PARTICIPANT + 3 }, (_, i) => createSubscription(deps, '2000000009', { rules: ['maintenance'], email: `x${i}@example.org` })));
    expect(made.filter((m) => m.ok)).toHaveLength(MAX_SUBSCRIPTIONS_PER_PARTICIPANT);
    expect(stored).toHaveLength(MAX_SUBSCRIPTIONS_PER_PARTICIPANT);
    // Another owner is counted apart, and the operator not at all.
    expect((await createSubscription(deps, '2000000010', { rules: ['maintenance'], email: 'y@example.org' })).ok).toBe(true);
    for (let i = 0; i < MAX_SUBSCRIPTIONS_PER_PARTICIPANT + 1; i++) expect((await createSubscription(deps, 'operator', { rules: ['maintenance'], email: `ops${i}@example.net` })).ok).toBe(true);
  });

  it('outside DEV, refuses a plain http webhook URL as message webhooks are refused (security review: notices left over plain http)', async () => {
    const stored: AlarmSubscription[] = [];
    const deps = (environment: string) => ({ environment, subscriptions: { put: async (x: AlarmSubscription) => void stored.push(x), list: async () => stored }, checkUrl: async () => null, now: () => 0 });
    for (const owner of ['2000000011', 'operator']) {
      expect(await createSubscription(deps('PROD'), owner, { rules: ['maintenance'], webhookUrl: 'http://alarms.example.org/hook' })).toEqual({ ok: false, help: 'webhookUrl must be https in the PROD environment (plain http is for DEV only)' });
      expect(await createSubscription(deps('PROD'), owner, { rules: ['maintenance'], webhookUrl: 'HTTP://alarms.example.org/hook', email: 'a@example.org' })).toMatchObject({ ok: false });
      expect((await createSubscription(deps('PROD'), owner, { rules: ['maintenance'], webhookUrl: 'https://alarms.example.org/hook' })).ok).toBe(true);
      expect((await createSubscription(deps('DEV'), owner, { rules: ['maintenance'], webhookUrl: 'http://alarms.example.org/hook' })).ok).toBe(true);
    }
  });
});

describe('queue alarms, from one reading of the queues', () => {
  it('raises queue-depth past the depth threshold and queue-age past the age threshold (a pull recipient that stopped pulling too)', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const queue = (recipientDipId: string) => ({ recipientDipId, channel: 'IF-021' });
    const depths = [
      { queue: queue('1000000001'), depth: 3, oldestAgeMs: 61 * 60_000, damage: null },
      { queue: queue('1000000002'), depth: 20_000, oldestAgeMs: 5_000, damage: null },
      { queue: queue('1000000003'), depth: 0, oldestAgeMs: 0, damage: null },
      { queue: queue('1000000004'), depth: 1, oldestAgeMs: 59 * 60_000, damage: null },
      // A sender's status messages wait for it to pull them: not a latency alarm.
      { queue: { recipientDipId: '2000000001', channel: 'STATUS' }, depth: 2, oldestAgeMs: 120 * 60_000, damage: null },
    ];
    const conditions = await queueAlarms(async () => depths, 10_000, 60 * 60_000, clock)();
    expect(conditions.map((c) => [c.key, c.participant, c.since])).toEqual([
      ['queue-age:1000000001/IF-021', '1000000001', clock.now() - 60_000],
      ['queue-depth:1000000002/IF-021', '1000000002', clock.now() - 5_000],
    ]);
    expect(conditions[0]!.summary).toBe('messages for 1000000001 / IF-021 have waited more than 60 min undelivered');
  });
});

describe('queue-damage, from the same reading of the queues', () => {
  it('keeps the alarms that resolved, newest first, the last 50, each for whom it may concern', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    let holding: AlarmCondition[] = [];
    const channel: AlarmChannel = { email: async () => undefined, webhook: async () => undefined, close: async () => undefined };
    const alarms = new Alarms([() => holding], { list: async () => [] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 100 }, clock, quietLogger);
    const cond = (i: number, participant: string | null): AlarmCondition => ({ key: `k${i}`, rule: 'dead-letter', participant, summary: `s${i}`, since: clock.now() });
    for (let i = 0; i < 60; i++) {
      holding = [cond(i, i % 2 === 0 ? '1000000001' : null)];
      await alarms.evaluate();
      await clock.advance(1_000);
    }
    holding = [];
    await alarms.evaluate();
    const resolved = alarms.resolved();
    expect(resolved.length).toBe(50);
    expect(resolved.map((r) => r.condition.key).slice(0, 3)).toEqual(['k59', 'k58', 'k57']);
    expect(resolved[0]!.resolvedAt).toBe(Date.UTC(2026, 5, 1, 12, 1, 0));
    expect(alarms.resolved('1000000001').map((r) => r.condition.key).slice(0, 2)).toEqual(['k58', 'k56']);
    expect(alarms.resolved('1000000002')).toEqual([]);
  });

  it("raises an alarm naming a queue whose oldest waiting entry's message is missing, for operators only and sent once in a cluster, and resolves it once the damage is gone", async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const damage = 'damaged database: queue 1000000001/IF-021 position 4 refers to message 5b0c1e2a-7f41-4c55-9d3e-0a1b2c3d4e5f, which is missing';
    const reading = [{ queue: { recipientDipId: '1000000001', channel: 'IF-021' }, depth: 2, oldestAgeMs: 1_000, damage: damage as string | null }];
    const sent: AlarmNotice[] = [];
    const channel: AlarmChannel = { email: async () => undefined, webhook: async (_url, n) => void sent.push(n as AlarmNotice), close: async () => undefined };
    const ops: AlarmSubscription = { id: 'ops', owner: 'operator', rules: ['queue-damage'], email: null, webhookUrl: 'https://ops.example/alarms', createdAt: 1 };
    const recipient: AlarmSubscription = { ...ops, id: 'sup', owner: '1000000001', webhookUrl: 'https://sup.example/alarms' };
    const alarms = new Alarms([queueAlarms(async () => reading, 10_000, 60 * 60_000, clock)], { list: async () => [ops, recipient] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 100 }, clock, quietLogger);
    await alarms.evaluate();
    expect(alarms.current()).toEqual([
      {
        key: 'queue-damage:1000000001/IF-021',
        rule: 'queue-damage',
        participant: null,
        summary: `queue 1000000001 / IF-021 is damaged and nothing past its head is delivered: ${damage} (repair it, then POST /admin/queues/resume)`,
        since: clock.now(),
      },
    ]);
    // Read from the store every node shares: in a cluster only the notifier lease's holder tells it.
    expect(isSharedCondition(alarms.current()[0]!)).toBe(true);
    expect(sent.map((n) => `${n.kind} ${n.condition.key}`)).toEqual(['raised queue-damage:1000000001/IF-021']);
    expect(alarms.current('1000000001')).toEqual([]);
    await clock.advance(10_000);
    await alarms.evaluate();
    expect(sent).toHaveLength(1);
    // Repaired (or the entry settled): resolved.
    reading[0]!.damage = null;
    await clock.advance(10_000);
    await alarms.evaluate();
    expect(alarms.current()).toEqual([]);
    expect(sent.map((n) => `${n.kind} ${n.condition.key}`)).toEqual(['raised queue-damage:1000000001/IF-021', 'resolved queue-damage:1000000001/IF-021']);
  });
});

describe('queue-halted, from the workers\' state', () => {
  it('raises an alarm naming a queue a permanent store error halted, and its error, for operators only, and resolves it when an operator resumes the queue', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const queue: QueueRef = { recipientDipId: '1000000001', channel: 'IF-021' };
    const entries: QueueEntry[] = [{ seq: 1, messageId: 1, transactionId: 'T-1', receivedAt: clock.now(), outbound: '{}', capacity: null, securityPattern: null }];
    const readFails: Error[] = [new StoreError('permanent', 'damaged database: queue 1000000001/IF-021 position 1 refers to message 1, which is missing', 'MISSING_ROW')];
    let acked = 0;
    const log = {
      readQueue: async (_q: QueueRef, after: number, limit: number) => {
        const fail = readFails.shift();
        if (fail) throw fail;
        return entries.filter((e) => e.seq > after).slice(0, limit);
      },
      queueState: async () => ({ ackedSeq: acked, headSeq: entries.length, pulledSeq: 0 }),
      settle: async (_q: QueueRef, s: Settlement) => ((acked = Math.max(acked, s.upTo)), 'settled' as const),
    };
    const worker = new QueueWorker(queue, workerDeps(clock, { log, transport: { post: async () => ({ kind: 'answered', status: 200, retryAfter: undefined, body: '', latencyMs: 1 }), close: async () => {} } }));
    const sent: AlarmNotice[] = [];
    const channel: AlarmChannel = { email: async () => undefined, webhook: async (_url, n) => void sent.push(n as AlarmNotice), close: async () => undefined };
    const ops: AlarmSubscription = { id: 'ops', owner: 'operator', rules: ['queue-halted'], email: null, webhookUrl: 'https://ops.example/alarms', createdAt: 1 };
    const recipient: AlarmSubscription = { ...ops, id: 'sup', owner: '1000000001', webhookUrl: 'https://sup.example/alarms' };
    const alarms = new Alarms([haltedQueueAlarms(() => [worker.status()], clock)], { list: async () => [ops, recipient] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 100 }, clock, quietLogger);
    worker.kick();
    await settle();
    expect(worker.state).toBe('halted');
    await alarms.evaluate();
    expect(alarms.current()).toEqual([
      {
        key: 'queue-halted:1000000001/IF-021',
        rule: 'queue-halted',
        participant: null,
        summary: 'queue 1000000001 / IF-021 is halted by a permanent storage error and nothing more is delivered from it: damaged database: queue 1000000001/IF-021 position 1 refers to message 1, which is missing (repair it, then POST /admin/queues/resume)',
        since: clock.now(),
      },
    ]);
    // Seen by the node whose worker halted: it tells it, not the notifier lease's holder.
    expect(isSharedCondition(alarms.current()[0]!)).toBe(false);
    expect(alarms.current('1000000001')).toEqual([]);
    expect(sent.map((n) => `${n.kind} ${n.condition.key}`)).toEqual(['raised queue-halted:1000000001/IF-021']);
    // Repaired and resumed (delivery.resume, as POST /admin/queues/resume does): delivered, and resolved.
    worker.resume();
    await settle();
    expect(acked).toBe(1);
    await clock.advance(10_000);
    await alarms.evaluate();
    expect(alarms.current()).toEqual([]);
    expect(sent.map((n) => `${n.kind} ${n.condition.key}`)).toEqual(['raised queue-halted:1000000001/IF-021', 'resolved queue-halted:1000000001/IF-021']);
  });
});

describe('webhook-failing and queue-age while a dead webhook\'s messages go stale (injected clock)', () => {
  /** One queue in memory: what a recipient's webhook worker and the queue alarms read. */
  function road() {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 13, 0, 0));
    const queue: QueueRef = { recipientDipId: '1000000001', channel: 'IF-021' };
    const entries: QueueEntry[] = [];
    let acked = 0;
    const log = {
      readQueue: async (_q: QueueRef, after: number, limit: number) => entries.filter((e) => e.seq > after).slice(0, limit),
      queueState: async () => ({ ackedSeq: acked, headSeq: entries.length, pulledSeq: 0 }),
      queueBacklog: async () => ({ ackedSeq: acked, headSeq: entries.length, oldestReceivedAt: entries.find((e) => e.seq > acked)?.receivedAt ?? null, damage: null }),
      pendingQueues: async () => (entries.length > acked ? [queue] : []),
      settle: async (_q: QueueRef, s: Settlement) => ((acked = Math.max(acked, s.upTo)), 'settled' as const),
    };
    let up = false;
    const worker = new QueueWorker(queue, workerDeps(clock, {
      log,
      transport: { post: async () => (up ? { kind: 'answered', status: 200, retryAfter: undefined, body: '', latencyMs: 1 } : { kind: 'failed', error: 'ECONNREFUSED 127.0.0.1:9', latencyMs: 1 }), close: async () => {} },
      settings: { timeoutMs: 1000, retry: { baseMs: 1000, capMs: 10_000 }, sweepIntervalMs: 1000, gatherMs: 0 },
      staleAfterMs: () => 60_000,
    }));
    const notices: string[] = [];
    const channel: AlarmChannel = { email: async () => undefined, webhook: async (_url, n) => void notices.push(`${(n as AlarmNotice).kind} ${(n as AlarmNotice).condition.key}`), close: async () => undefined };
    const subscription: AlarmSubscription = { id: 's1', owner: 'operator', rules: ['webhook-failing', 'queue-age', 'dead-letter'], email: null, webhookUrl: 'https://ops.example/alarms', createdAt: 1 };
    const sources = [webhookFailingAlarms(() => [worker.status()], 60_000, clock), queueAlarms(() => queueDepths(log, clock.now()), 10_000, 60_000, clock)];
    const alarms = new Alarms(sources, { list: async () => [subscription] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 100 }, clock, quietLogger);
    const arrive = (): void => {
      entries.push({ seq: entries.length + 1, messageId: entries.length + 1, transactionId: `T-${entries.length + 1}`, receivedAt: clock.now(), outbound: '{}', capacity: null, securityPattern: null });
      worker.kick();
    };
    const keys = (): string[] => alarms.current().map((c) => c.key).sort();
    return { clock, worker, alarms, notices, arrive, keys, recover: () => void (up = true) };
  }

  it('stale messages dead-lettered resolve queue-age (they left the queue) but not webhook-failing, which a success resolves', async () => {
    const r = road();
    r.arrive();
    await settle();
    await r.clock.advance(62_000);
    await r.alarms.evaluate();
    expect(r.keys()).toEqual(['queue-age:1000000001/IF-021', 'webhook-failing:1000000001/IF-021']);
    expect(r.alarms.current().find((c) => c.rule === 'webhook-failing')!.summary).toMatch(/has failed for 1 min \(\d+ calls; ECONNREFUSED 127\.0\.0\.1:9\)/);
    // The next retry (backoff capped at 10 s) finds the message stale: dead-lettered, no call answered.
    await r.clock.advance(10_000);
    expect(r.worker.status()).toMatchObject({ state: 'idle', ackedSeq: 1, lastError: 'ECONNREFUSED 127.0.0.1:9' });
    await r.alarms.evaluate();
    expect(r.keys()).toEqual(['webhook-failing:1000000001/IF-021']);
    expect(r.notices).toEqual(['raised webhook-failing:1000000001/IF-021', 'raised queue-age:1000000001/IF-021', 'resolved queue-age:1000000001/IF-021']);
    // Later, the webhook still down, nothing to send: still raised, no flapping.
    await r.clock.advance(600_000);
    await r.alarms.evaluate();
    expect(r.keys()).toEqual(['webhook-failing:1000000001/IF-021']);
    // The recipient is back and the next message is delivered: resolved.
    r.recover();
    r.arrive();
    await settle();
    await r.alarms.evaluate();
    expect(r.keys()).toEqual([]);
    expect(r.notices.slice(3)).toEqual(['resolved webhook-failing:1000000001/IF-021']);
  });
});

// A probe found an alarm's summary frozen at the numbers of the moment it was raised: GET /admin/alarms
// said "(1 when raised)" while the queue had gathered far more dead letters. What the operator on call
// reads now is current (each evaluation), and a notice, read later in a mailbox, says when its numbers are from.
describe('what an operator reads of an alarm raised a while ago', () => {
  const queue: QueueRef = { recipientDipId: '1000000001', channel: 'IF-021' };
  const dead = (n: number, at: number): DeadLetter[] =>
    Array.from({ length: n }, (_, i) => ({ queue, seq: i + 1, messageId: i + 1, transactionId: `T-${i + 1}`, senderDipId: '2000000001', senderUniqueReference: null, receivedAt: at, reason: 'rejected', status: 400, detail: 'HTTP 400', at, state: 'dead' }));

  it('GET /admin/alarms gives the numbers of the last evaluation, keeps when it was raised, and sends no second notice; the e-mail says when its numbers are from', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 9, 0, 0));
    const raisedAt = clock.now();
    let letters = dead(1, raisedAt);
    const mails: Array<{ subject: string; text: string }> = [];
    const hooks: AlarmNotice[] = [];
    const channel: AlarmChannel = { email: async (_to, subject, text) => void mails.push({ subject, text }), webhook: async (_url, n) => void hooks.push(n as AlarmNotice), close: async () => undefined };
    const subscription: AlarmSubscription = { id: 's1', owner: 'operator', rules: ['dead-letter'], email: 'ops@example.net', webhookUrl: 'https://ops.example/alarms', createdAt: 1 };
    const alarms = new Alarms([deadLetterAlarms({ deadLetters: async () => letters }, clock)], { list: async () => [subscription] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 100 }, clock, quietLogger);
    await alarms.evaluate();
    expect(alarms.current()[0]!.summary).toBe('dead letters in queue 1000000001 / IF-021: 1');
    await clock.advance(3_600_000);
    letters = dead(250, raisedAt + 60_000);
    await alarms.evaluate();
    expect(alarms.current()).toEqual([{ key: 'dead-letter:1000000001/IF-021', rule: 'dead-letter', participant: '1000000001', summary: 'dead letters in queue 1000000001 / IF-021: 250', since: raisedAt, channel: 'IF-021' }]);
    expect(mails).toHaveLength(1);
    expect(hooks).toHaveLength(1);
    // The notice was current when sent; read an hour later, it says so, and where to read the numbers now.
    expect(mails[0]!.text).toContain(`as of: ${utcAndUk(raisedAt)} (GET /admin/alarms, or /observability/alarms, shows what holds now)`);
    expect(hooks[0]!.asOf).toBe(raisedAt);
    const lastHeld = clock.now();
    letters = [];
    await clock.advance(10_000);
    await alarms.evaluate();
    expect(mails[1]!.subject).toBe('[DIP alarm RESOLVED] dead-letter (critical): 1000000001 / IF-021');
    expect(mails[1]!.text.split('\n')[0]).toBe('Alarm resolved: dead letters in queue 1000000001 / IF-021: 250');
    expect(mails[1]!.text).toContain(`as of: ${utcAndUk(lastHeld)} (the last evaluation that found it holding)`);
    expect(hooks[1]).toMatchObject({ kind: 'resolved', at: lastHeld + 10_000, asOf: lastHeld });
  });
});

describe('an evaluation when sources or the subscription store fail (a cluster whose database is down)', () => {
  const condition = (key: string, rule: AlarmCondition['rule']): AlarmCondition => ({ key, rule, participant: null, summary: key, since: 1 });
  const subscription: AlarmSubscription = { id: 's1', owner: 'operator', rules: ['storage', 'dead-letter'], email: null, webhookUrl: 'https://ops.example/alarms', createdAt: 1 };
  function harness() {
    const sent: string[] = [];
    const state = { storeDown: false, dead: [condition('dead-letter:q', 'dead-letter')], storage: [] as AlarmCondition[] };
    const channel: AlarmChannel = { email: async () => undefined, webhook: async (_url, n) => void sent.push(`${(n as AlarmNotice).kind} ${(n as AlarmNotice).condition.key}`), close: async () => undefined };
    const store = { list: async () => (state.storeDown ? Promise.reject(new Error('ECONNREFUSED')) : [subscription]) };
    // The store-reading source first, as the DIP lists them: it must not hide the storage source after it.
    const sources = [async () => (state.storeDown ? Promise.reject(new Error('ECONNREFUSED')) : state.dead), () => state.storage];
    const alarms = new Alarms(sources, store, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 100 }, new FakeClock(), quietLogger);
    return { alarms, state, sent };
  }

  it('raises the storage alarm while a store-reading source fails, keeps that source’s alarms, and tells the subscribers read before', async () => {
    const { alarms, state, sent } = harness();
    await alarms.evaluate();
    expect(sent).toEqual(['raised dead-letter:q']);
    state.storeDown = true;
    state.storage = [condition('storage', 'storage')];
    await alarms.evaluate();
    expect(alarms.current().map((c) => c.key).sort()).toEqual(['dead-letter:q', 'storage']);
    expect(sent).toEqual(['raised dead-letter:q', 'raised storage']);
    state.storeDown = false;
    state.storage = [];
    state.dead = [];
    await alarms.evaluate();
    expect(sent.slice(2).sort()).toEqual(['resolved dead-letter:q', 'resolved storage']);
  });

  it('keeps the notices made before any subscription list could be read, and sends them once one is; the evaluation never rejects', async () => {
    const { alarms, state, sent } = harness();
    state.storeDown = true;
    state.storage = [condition('storage', 'storage')];
    await expect(alarms.evaluate()).resolves.toBeUndefined();
    expect(sent).toEqual([]);
    state.storeDown = false;
    await alarms.evaluate();
    expect(sent).toEqual(['raised storage', 'raised dead-letter:q']);
  });
});

describe('an evaluation while NATS does not answer (the alarm notifier lease cannot be read)', () => {
  const condition = (key: string, rule: AlarmCondition['rule']): AlarmCondition => ({ key, rule, participant: null, summary: key, since: 1 });
  const subscription: AlarmSubscription = { id: 's1', owner: 'operator', rules: ['coordination', 'dead-letter'], email: null, webhookUrl: 'https://ops.example/alarms', createdAt: 1 };

  it("raises and resolves this node's coordination alarm, listed and notified, while the notifier lease's turn waits for NATS", async () => {
    const sent: string[] = [];
    const channel: AlarmChannel = { email: async () => undefined, webhook: async (_url, n) => void sent.push(`${(n as AlarmNotice).kind} ${(n as AlarmNotice).condition.key}`), close: async () => undefined };
    const state = { coordination: [] as AlarmCondition[] };
    // A NATS away: the lease's turn waits (a KV read with the connection reconnecting) until NATS is back.
    let natsBack: () => void = () => undefined;
    let natsDown = false;
    let record = new Map<string, NotifiedAlarm>();
    const notifier: AlarmNotifierLease = {
      turn: async () => {
        if (natsDown) await new Promise<void>((resolve) => (natsBack = resolve));
        return new Map(record);
      },
      record: async (notified) => {
        record = new Map(notified);
        return true;
      },
      close: async () => undefined,
    };
    const sources = [() => [condition('dead-letter:q', 'dead-letter')], () => state.coordination];
    const alarms = new Alarms(sources, { list: async () => [subscription] }, channel, { evaluateIntervalMs: 1_000, maxNoticesPerHour: 100 }, new FakeClock(), quietLogger, notifier);
    await alarms.evaluate();
    expect(sent).toEqual(['raised dead-letter:q']);

    natsDown = true;
    state.coordination = [condition('coordination:node-1', 'coordination')];
    void alarms.evaluate();
    await settle();
    // Before: the whole evaluation waited for the turn, so the alarm about NATS itself was neither listed
    // nor sent until NATS was back (and then resolved at once).
    expect(alarms.current().map((c) => c.key).sort()).toEqual(['coordination:node-1', 'dead-letter:q']);
    expect(sent).toEqual(['raised dead-letter:q', 'raised coordination:node-1']);
    // Still away at the next evaluations: they run (they do not wait for the first one's turn), and the
    // end of the condition is listed and sent while the first turn still waits.
    state.coordination = [];
    void alarms.evaluate();
    await settle();
    expect(alarms.current().map((c) => c.key)).toEqual(['dead-letter:q']);
    expect(sent).toEqual(['raised dead-letter:q', 'raised coordination:node-1', 'resolved coordination:node-1']);

    natsDown = false;
    natsBack();
    await alarms.evaluate();
    await alarms.stop();
    expect(sent).toEqual(['raised dead-letter:q', 'raised coordination:node-1', 'resolved coordination:node-1']);
  });
});
