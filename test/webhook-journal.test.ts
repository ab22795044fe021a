import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * A participant's webhook changes (pubconfig, status config, the user portal) left no journal entry, only
 * an activity-log line without the URL (spec 8.3): an auditor could not tell where a participant's messages
 * were sent, nor since when. Each set and removal is journalled with the webhook before and after, its URL
 * in its shown form (a key in its query is never written).
 */
describe('webhook changes are journalled', () => {
  let t: TestDip;
  let sup: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip();
    sup = await t.participant('1000000007', ['SUP']);
  });
  afterAll(async () => t?.close());

  it('journals a set, a change and a removal with before and after, the URL as shown, never its key', async () => {
    const hooks = await t.receiver();
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${hooks.url}a?code=s3cr3t-one` })).status).toBe(201);
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${hooks.url}b?code=s3cr3t-two`, maxMessageCount: 5 })).status).toBe(201);
    expect((await sup.client.deleteWebhook('IF-021', sup.dipId)).status).toBe(204);
    expect((await sup.client.deleteWebhook('IF-021', sup.dipId)).status).toBe(204); // none left: no act

    const entries = (await t.dip.backend.journal.entries({ target: `${sup.dipId}/IF-021`, limit: 10 })).reverse();
    expect(entries.map((e) => [e.actor, e.action])).toEqual([
      [`participant:${sup.dipId}`, 'webhook.set'],
      [`participant:${sup.dipId}`, 'webhook.set'],
      [`participant:${sup.dipId}`, 'webhook.remove'],
    ]);
    expect(entries[0]!.before).toBeNull();
    expect(entries[0]!.after).toMatchObject({ url: `${hooks.url}a?code=…`, registeredBy: sup.dipId });
    expect(entries[1]!.before).toMatchObject({ url: `${hooks.url}a?code=…` });
    expect(entries[1]!.after).toMatchObject({ url: `${hooks.url}b?code=…`, maxMessageCount: 5 });
    expect(entries[2]!.before).toMatchObject({ url: `${hooks.url}b?code=…` });
    expect(entries[2]!.after).toBeNull();
    expect(JSON.stringify(entries)).not.toContain('s3cr3t');
  });
});
