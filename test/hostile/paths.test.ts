/**
 * Hostile identifiers: path tricks in channel and DIP IDs (encoded slashes and dots, NULs, malformed
 * percent-encoding, very long IDs) and Unicode look-alikes of channel names, DIP IDs, roles and field
 * names. Every request is correctly signed for the path it uses, so it is judged on the ID alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestParticipant } from '../helpers/dip-harness.js';
import { expectRefusal, expectStillServing, messageCount, send, startHostileDip, SUP_ID, validItem, type HostileDip } from './helpers.js';

let h: HostileDip;
const LDSO_ID = '3000000001';
beforeAll(async () => {
  h = await startHostileDip();
  await h.t.participant(LDSO_ID, ['LDSO']);
});
afterAll(async () => {
  await h?.close();
});

const message = () => JSON.stringify([validItem()]);
const hook = JSON.stringify({ callbackURL: 'https://evil.example/steal' });

describe('path tricks in IDs', () => {
  // [name, expected status, help, who, method, path, body]
  type Case = [string, number, RegExp, () => TestParticipant, string, string, () => string];
  const sds = () => h.sds;
  const sup = () => h.sup;
  const cases: Case[] = [
    ['encoded ../ climbing out of the channel into pubconfig', 403, /recipient-id x is not the caller/, sup, 'POST', '/dip-channel/..%2f..%2fetc/pubconfig/x', () => hook],
    ["encoded ../ in the channel of one's own pubconfig", 404, /is not a channel of this DIP/, sup, 'POST', `/dip-channel/..%2f..%2fetc/pubconfig/${SUP_ID}`, () => hook],
    ['encoded ../ to /etc/passwd', 404, /is not a channel of this DIP/, sds, 'POST', '/dip-channel/..%2F..%2Fetc%2Fpasswd', message],
    ['encoded slashes smuggling a sub-resource into the channel ID', 404, /is not a channel of this DIP/, sup, 'POST', `/dip-channel/IF-021%2Fpubconfig%2F${SUP_ID}`, () => hook],
    ["encoded ../ from one's own recipient ID into another's", 403, /is not the caller 1000000001/, sup, 'POST', `/dip-channel/IF-021/pubconfig/${SUP_ID}%2F..%2F${LDSO_ID}`, () => hook],
    ["an encoded ../ prefix on another's recipient ID", 403, /is not the caller 1000000001/, sup, 'POST', `/dip-channel/IF-021/pubconfig/..%2F${LDSO_ID}`, () => hook],
    ['literal dot segments before the channel', 404, /no such resource|is not a channel/, sds, 'POST', '/dip-channel/../dip-channel/IF-021', message],
    ['literal dot segments after the channel', 404, /no such resource|is not a channel/, sds, 'POST', '/dip-channel/IF-021/..', message],
    ['percent-encoded dot segments', 404, /no such resource|is not a channel/, sds, 'POST', '/dip-channel/%2e%2e/%2e%2e/health', message],
    ['overlong UTF-8 dots and slash', 400, /malformed|not a valid URL|is not a channel/, sds, 'POST', '/dip-channel/%C0%AE%C0%AE%C0%AF', message],
    ['backslash traversal', 404, /is not a channel of this DIP|no such resource/, sds, 'POST', '/dip-channel/..\\..\\etc', message],
    ['a NUL byte in the channel ID', 404, /is not a channel of this DIP/, sds, 'POST', '/dip-channel/IF-021%00', message],
    ['a NUL byte in the recipient ID', 403, /is not the caller/, sup, 'POST', `/dip-channel/IF-021/pubconfig/${SUP_ID}%00`, () => hook],
    ['a truncated percent-encoding', 400, /malformed percent-encoding/, sds, 'POST', '/dip-channel/IF-021%', message],
    ['an invalid UTF-8 percent-encoding', 400, /malformed percent-encoding/, sds, 'POST', '/dip-channel/%E0%A4%A', message],
    ['doubled slashes', 404, /no such resource/, sds, 'POST', '//dip-channel//IF-021', message],
    ['a matrix parameter on the channel', 404, /is not a channel of this DIP/, sds, 'POST', '/dip-channel/IF-021;jsessionid=abc', message],
    ['a 201-character channel ID', 404, /longer than 200 characters/, sds, 'POST', `/dip-channel/IF-${'0'.repeat(198)}`, message],
    ['a 10 000-character recipient ID', 404, /longer than 200 characters/, sup, 'POST', `/dip-channel/IF-021/pubconfig/${'1'.repeat(10_000)}`, () => hook],
    ['a 200-character channel ID (at the limit)', 404, /is not a channel of this DIP/, sds, 'POST', `/dip-channel/IF-${'0'.repeat(197)}`, message],
    ['a replay path climbing into a requeue of another queue', 404, /no such resource/, sup, 'POST', `/dip-channel/IF-021/replay/${SUP_ID}/../../requeue/${LDSO_ID}`, () => '{}'],
  ];

  let before = 0;
  beforeAll(() => {
    before = messageCount(h.t);
  });

  it.each(cases)('refuses %s (%i)', async (_name, status, help, who, method, path, body) => {
    const a = await send(h.t, who(), { method, path, body: body() });
    expectRefusal(a, status, help, path.slice(0, 100));
  });

  it('stored nothing, and configured no webhook for anyone', async () => {
    expect(messageCount(h.t)).toBe(before);
    const { default: Database } = await import('better-sqlite3');
    const path = await import('node:path');
    const db = new Database(path.join(h.t.config.dataDir, 'dip.db'), { readonly: true });
    try {
      expect((db.prepare('SELECT count(*) AS n FROM webhooks').get() as { n: number }).n).toBe(0);
    } finally {
      db.close();
    }
  });

  it('still routes the honest spellings: any case and a query string (201 each)', async () => {
    for (const path of ['/DIP-CHANNEL/if-021', '/dip-channel/IF-021?channel=IF-022', '/dip-channel/IF-021/']) {
      const a = await send(h.t, h.sds, { path, body: message() });
      expect(a.status, `${path}: ${a.text}`).toBe(201);
    }
    expect(messageCount(h.t)).toBe(before + 3);
    await expectStillServing(h);
  });
});

describe('Unicode look-alikes', () => {
  type Item = { payload: { CommonBlock: Record<string, Record<string, unknown>> } };
  const patched = (f: (item: Item) => void) => () => {
    const item = validItem() as unknown as Item;
    f(item);
    return JSON.stringify([item]);
  };
  const text = (f: (s: string) => string) => () => f(message());
  const enc = encodeURIComponent;
  // [name, status range, who, path, body]
  type Case = [string, [number, number], () => TestParticipant, string, () => string];
  const sds = () => h.sds;
  const sup = () => h.sup;
  const cases: Case[] = [
    ['Cyrillic І (U+0406) in "ІF-021" in the URL', [404, 404], sds, `/dip-channel/${enc('\u0406F-021')}`, message],
    ['fullwidth ＩＦ－０２１ in the URL', [404, 404], sds, `/dip-channel/${enc('ＩＦ－０２１')}`, message],
    ['a zero-width space after IF-021 in the URL', [404, 404], sds, `/dip-channel/${enc('IF-021\u200B')}`, message],
    ['a non-breaking hyphen in IF‑021 in the URL', [404, 404], sds, `/dip-channel/${enc('IF\u2011021')}`, message],
    ['Turkish dotted İ in İF-021 in the URL', [404, 404], sds, `/dip-channel/${enc('\u0130F-021')}`, message],
    ['Kelvin-style compatibility letters (ℐℱ-021) in the URL', [404, 404], sds, `/dip-channel/${enc('\u2110\u2131-021')}`, message],
    ["Arabic-Indic digits for one's own DIP ID in the URL", [403, 403], sup, `/dip-channel/IF-021/pubconfig/${enc('١٠٠٠٠٠٠٠٠١')}`, () => hook],
    ["fullwidth digits for one's own DIP ID in the URL", [403, 403], sup, `/dip-channel/IF-021/pubconfig/${enc('１０００００００００１')}`, () => hook],
    ['S0.interfaceID with a Cyrillic І', [400, 403], sds, '/dip-channel/IF-021', patched((i) => (i.payload.CommonBlock['S0']!['interfaceID'] = '\u0406F-021'))],
    ['S1.senderDIPID with a fullwidth digit', [400, 403], sds, '/dip-channel/IF-021', patched((i) => (i.payload.CommonBlock['S1']!['senderDIPID'] = '２000000001'))],
    ['S1.senderDIPID with Arabic-Indic digits', [400, 403], sds, '/dip-channel/IF-021', patched((i) => (i.payload.CommonBlock['S1']!['senderDIPID'] = '٢٠٠٠٠٠٠٠٠١'))],
    ['S1.senderRoleID "SDЅ" with a Cyrillic Ѕ', [400, 403], sds, '/dip-channel/IF-021', patched((i) => (i.payload.CommonBlock['S1']!['senderRoleID'] = 'SD\u0405'))],
    ['S1.environmentTag "DЕV" with a Cyrillic Е', [400, 400], sds, '/dip-channel/IF-021', patched((i) => (i.payload.CommonBlock['S1']!['environmentTag'] = 'D\u0415V'))],
    ['A0.primaryRecipients with a Cyrillic О for a zero', [400, 400], sds, '/dip-channel/IF-021', patched((i) => (i.payload.CommonBlock['A0']!['primaryRecipients'] = ['1\u041E00000001']))],
    ['A0.primaryRecipients with a trailing zero-width joiner', [400, 400], sds, '/dip-channel/IF-021', patched((i) => (i.payload.CommonBlock['A0']!['primaryRecipients'] = [`${SUP_ID}\u200D`]))],
    ['"СommonBlock" spelt with a Cyrillic С', [400, 400], sds, '/dip-channel/IF-021', text((s) => s.replace('"CommonBlock"', '"\u0421ommonBlock"'))],
    ['"senderDIPΙD" with a Greek Ι', [400, 400], sds, '/dip-channel/IF-021', text((s) => s.replace('"senderDIPID"', '"senderDIP\u0399D"'))],
    ['"S1" spelt with a fullwidth Ｓ', [400, 400], sds, '/dip-channel/IF-021', text((s) => s.replace('"S1"', '"Ｓ1"'))],
  ];

  let before = 0;
  beforeAll(() => {
    before = messageCount(h.t);
  });

  it.each(cases)('refuses %s', async (_name, [lo, hi], who, path, body) => {
    const a = await send(h.t, who(), { path, body: body() });
    expectRefusal(a, [lo, hi]);
  });

  it('stored nothing, and still accepts a valid message (201)', async () => {
    expect(messageCount(h.t)).toBe(before);
    await expectStillServing(h);
  });
});
