/**
 * An operator who creates an administrator in a participant's portal could take the participant's account
 * over with no trace the participant sees. Its administrators' address (the one they keep for the DIP's
 * notices, ParticipantProfile.maintenanceEmail) is told, in fixed text with nothing the operator typed (no
 * username, no display name), and the act is journalled against the participant.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeProfile } from '../src/pipeline/participants.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';
import { mailingTo, startSmtp, type TestSmtp } from './helpers/smtp.js';

describe("an operator creating a participant's administrator", () => {
  let t: TestDip;
  let smtp: TestSmtp;
  beforeAll(async () => {
    smtp = await startSmtp();
    t = await startTestDip(mailingTo(smtp));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it("tells the participant's administrators in fixed text, and journals it against the participant", async () => {
    const admin = adminApi(t);
    const sup = await t.participant('1000000001', ['SUP']);
    await changeProfile(t.dip.backend.registry, sup.dipId, 'test', Date.now, (p) => ({ ...p, maintenanceEmail: 'admins@sup.example' }));
    // An operations user: not an administrator, nobody told.
    expect((await admin('POST', '/admin/portal/accounts', { username: 'ops1', displayName: 'Ops', participantDipId: sup.dipId, level: 'operations' })).status).toBe(201);
    const made = await admin('POST', '/admin/portal/accounts', { username: 'evil-admin', displayName: 'Click https://phish.example now', participantDipId: sup.dipId, level: 'admin' });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    await waitFor(() => smtp.mails.length > 0, 10_000, 'the notice e-mail');
    expect(smtp.mails).toHaveLength(1);
    const mail = smtp.mails[0]!;
    expect(mail.to).toEqual(['admins@sup.example']);
    expect(mail.data).toContain(sup.dipId);
    expect(mail.data).toMatch(/operator/i);
    expect(mail.data).not.toContain('evil-admin');
    expect(mail.data).not.toContain('phish');
    const entries = (await admin('GET', `/admin/journal?action=participant.admin-notice`)).body as Array<Record<string, unknown>>;
    expect(entries).toEqual([expect.objectContaining({ target: sup.dipId, after: expect.objectContaining({ told: 'sent' }) })]);
  });

  // Review: an operator could disable and enable again a participant's administrator (one it knows the
  // password of) with nothing told: enabling one again tells as making one does; an operations user, nobody.
  it("tells the participant's administrators when an operator enables an administrator again", async () => {
    const admin = adminApi(t);
    const sup = await t.participant('1000000002', ['SUP']);
    await changeProfile(t.dip.backend.registry, sup.dipId, 'test', Date.now, (p) => ({ ...p, maintenanceEmail: 'admins2@sup.example' }));
    expect((await admin('POST', '/admin/portal/accounts', { username: 'ops2', displayName: 'Ops', participantDipId: sup.dipId, level: 'operations' })).status).toBe(201);
    expect((await admin('POST', '/admin/portal/accounts', { username: 'sleeper', displayName: 'Sleeper', participantDipId: sup.dipId, level: 'admin' })).status).toBe(201);
    await waitFor(() => smtp.mails.some((m) => m.to[0] === 'admins2@sup.example'), 10_000, 'the creation notice');
    const told = () => smtp.mails.filter((m) => m.to[0] === 'admins2@sup.example');
    for (const username of ['ops2', 'sleeper']) {
      expect((await admin('POST', `/admin/portal/accounts/${username}/disabled`, { disabled: true, participantDipId: sup.dipId })).status).toBe(200);
    }
    expect((await admin('POST', '/admin/portal/accounts/ops2/disabled', { disabled: false, participantDipId: sup.dipId })).status).toBe(200);
    expect(told()).toHaveLength(1);
    expect((await admin('POST', '/admin/portal/accounts/sleeper/disabled', { disabled: false, participantDipId: sup.dipId })).status).toBe(200);
    await waitFor(() => told().length === 2, 10_000, 'the re-enable notice');
    expect(told()[1]!.data).toContain('enabled again');
    expect(told()[1]!.data).not.toContain('sleeper');
    // Enabling one that is enabled tells nothing.
    expect((await admin('POST', '/admin/portal/accounts/sleeper/disabled', { disabled: false, participantDipId: sup.dipId })).status).toBe(200);
    expect(told()).toHaveLength(2);
  });
});
