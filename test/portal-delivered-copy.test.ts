import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { portalUsers, type PortalUser } from './helpers/portal-user.js';

/**
 * The user portal's "Message as delivered to …" shows the copy its recipient got: made with the channel's
 * obfuscation rules in force when it was delivered, not today's. It was rebuilt with the rules in force
 * when viewed: after `PATCH /admin/channels/IF-021` dropped the supplier's rule, the page showed a field
 * (CustomBlock.B067) the supplier never received.
 */
describe('portal: a message as delivered, after the channel\'s obfuscation rules changed', () => {
  let t: TestDip;
  let users: ReturnType<typeof portalUsers>;
  let admin: ReturnType<typeof adminApi>;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let who: PortalUser;
  let received: Awaited<ReturnType<TestDip['receiver']>>['calls'];
  let n = 0;

  /** Sends one IF-021 to the supplier and waits until its webhook has it; its transaction ID. */
  const delivered = async (): Promise<string> => {
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', mpan: '1200000000009', primaryRecipients: [sup.dipId], uniqueSuffix: `copy${++n}` })]);
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    const tx = sent.body.messageArray[0]!.transactionID!;
    await waitFor(async () => {
      const j = await admin('GET', `/admin/reports/journey/${tx}`);
      return j.status === 200 && (j.body as { rows: Array<{ event: string }> }).rows.some((e) => e.event === 'delivered');
    }, 15_000, `${tx} delivered`);
    return tx;
  };
  /** What the webhook got for it: whether its CustomBlock carried B067. */
  const webhookGotB067 = (tx: string): boolean => {
    const m = received.flatMap((c) => c.messages as Array<{ payload: { CommonBlock: { D0?: { transactionID?: string } }; CustomBlock: Record<string, unknown> } }>).find((x) => JSON.stringify(x).includes(tx));
    if (!m) throw new Error(`the webhook got no ${tx}`);
    return 'B067' in m.payload.CustomBlock;
  };
  /** The portal's copy of it, as the page's code block shows it (HTML-escaped JSON), and the page's text. */
  const shown = async (tx: string): Promise<{ copy: string; page: string }> => {
    const p = await users.page('GET', `/portal/messages/IF-021/${tx}`, who);
    expect(p.status).toBe(200);
    const copy = new RegExp(`<pre tabindex="0" role="region" aria-label="Message as delivered to ${sup.dipId}">([^<]*)</pre>`).exec(p.text)?.[1];
    if (copy === undefined) throw new Error(`no delivered copy on the page:\n${p.text}`);
    return { copy, page: p.text.replaceAll('&#39;', "'") };
  };
  const rules = async (obfuscation: Record<string, string[]> | null) => expect((await admin('PATCH', '/admin/channels/IF-021', { settings: { obfuscation } })).status).toBe(200);

  beforeAll(async () => {
    // The configuration file's rule: a supplier's copy goes without B067 (settings version 0).
    t = await startTestDip({ channels: { 'IF-021': { obfuscation: { SUP: ['CustomBlock.B067'] } } } });
    admin = adminApi(t);
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    const r = await t.receiver();
    received = r.calls;
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${r.url}dip` })).status).toBe(201);
    users = portalUsers(t);
    who = await users.signedIn('sup.copy', sup.dipId);
  }, 60_000);

  afterAll(async () => {
    await users?.close();
    await t?.close();
  });

  it('shows the copy made with the rules in force at delivery: the configuration file\'s, then each settings version\'s', async () => {
    const underConfig = await delivered();
    // A version of its own (the same rules as the configuration file's would change nothing, and make none).
    await rules({ SUP: ['CustomBlock.B067'], LDSO: ['CustomBlock.B067'] });
    const underVersion1 = await delivered();
    // The rule dropped: copies delivered from now on carry B067.
    await rules(null);
    const underVersion2 = await delivered();
    expect([underConfig, underVersion1, underVersion2].map(webhookGotB067)).toEqual([false, false, true]);

    for (const tx of [underConfig, underVersion1]) expect((await shown(tx)).copy, tx).not.toContain('B067');
    expect((await shown(underVersion2)).copy).toContain('B067');
    // The page says which rules it was made with.
    expect((await shown(underConfig)).page).toContain("IF-021's obfuscation rules in force when it was sent at");
    expect((await shown(underConfig)).page).toContain("the configuration file's (settings version 0)");
    const p1 = (await shown(underVersion1)).page;
    expect(p1, /Made with[^<]*/.exec(p1)?.[0]).toContain('those of settings version 1 (in force since');
    expect((await shown(underVersion2)).page).toContain('those of settings version 2 (in force since');
  });
});
