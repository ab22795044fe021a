import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { EncryptionKeyWatcher, ensureEncryptionKey, readEncryptionKeys, rotateEncryptionKey } from '../src/security/dip-encryption-key.js';
import { certificateThumbprint, decryptWithAny, encryptTo } from '../src/security/payload-encryption.js';
import { createCertificateAuthority, type KeyAndCert } from '../src/security/pki.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';

const DAY = 86_400_000;
const notAfter = (pem: string) => Date.parse(new X509Certificate(pem).validTo);
const sealedTo = (certPem: string, text: string, named = false) =>
  encryptTo(named ? { key: new X509Certificate(certPem).publicKey, thumbprint: certificateThumbprint(certPem) } : new X509Certificate(certPem).publicKey, text);

/**
 * The DIP's own pattern 2 key (senders encrypt to it): renewed ahead of expiry by the rule of the DIP's
 * other leaves, and on command, the key it replaces decrypting for an overlap, so what senders encrypted
 * to the old certificate (in flight, or from a copy of it they still hold) is still read.
 */
describe("the DIP's encryption key: renewal ahead of expiry, rotation, and the previous key's overlap", () => {
  let ca: KeyAndCert;
  beforeAll(async () => {
    ca = await createCertificateAuthority({ commonName: 'OpenDIP DEV CA', environment: 'DEV', validDays: 3650 });
  });

  it('is kept while far from expiry, and renewed within 7 days of it, the old key decrypting until its certificate expires', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-enc-'));
    const clock = new FakeClock(Date.now());
    const first = await ensureEncryptionKey(dir, ca, clock.now());
    expect(first.previous).toBeNull();
    expect((await ensureEncryptionKey(dir, ca, clock.now() + 100 * DAY)).current.certPem).toBe(first.current.certPem);
    const watcher = new EncryptionKeyWatcher(dir, first, clock, quietLogger);
    const inFlight = await sealedTo(first.current.certPem, '{"sent":"before the renewal"}');

    // Six days before expiry: renewed, as ensurePki renews the TLS and signing leaves.
    await clock.advance(notAfter(first.current.certPem) - 6 * DAY - clock.now());
    const renewed = await ensureEncryptionKey(dir, ca, clock.now());
    expect(renewed.current.certPem).not.toBe(first.current.certPem);
    expect(renewed.previous).toMatchObject({ certPem: first.current.certPem, keyPem: first.current.keyPem, validUntil: notAfter(first.current.certPem) });

    watcher.reload();
    expect(watcher.certificatePem()).toBe(renewed.current.certPem);
    expect(await decryptWithAny(watcher.decryptionKeys(), inFlight)).toBe('{"sent":"before the renewal"}');
    expect(await decryptWithAny(watcher.decryptionKeys(), await sealedTo(first.current.certPem, '{"named":"old"}', true))).toBe('{"named":"old"}');
    expect(await decryptWithAny(watcher.decryptionKeys(), await sealedTo(renewed.current.certPem, '{"to":"new"}', true))).toBe('{"to":"new"}');

    // Once the old certificate has expired, its key decrypts nothing more.
    await clock.advance(7 * DAY);
    expect(readEncryptionKeys(dir, clock.now())!.previous).toBeNull();
    await expect(decryptWithAny(watcher.decryptionKeys(), inFlight)).rejects.toThrow();
    await expect(decryptWithAny(watcher.decryptionKeys(), await sealedTo(first.current.certPem, '{}', true))).rejects.toThrow(/names the certificate x5t#S256 .* not one this DIP decrypts with/);
  });

  it('dip pki rotate-encryption: a new key at once, the previous one decrypting for the overlap asked for (none after a compromise)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-enc-'));
    const clock = new FakeClock(Date.now());
    const first = await ensureEncryptionKey(dir, ca, clock.now());
    const watcher = new EncryptionKeyWatcher(dir, first, clock, quietLogger);
    const inFlight = await sealedTo(first.current.certPem, '{"n":1}');

    const rotated = await rotateEncryptionKey(dir, ca, { overlapDays: 2, now: clock.now() });
    expect(rotated.previous?.validUntil).toBe(clock.now() + 2 * DAY);
    watcher.reload();
    expect(watcher.certificatePem()).toBe(rotated.current.certPem);
    expect(await decryptWithAny(watcher.decryptionKeys(), inFlight)).toBe('{"n":1}');
    await clock.advance(2 * DAY);
    await expect(decryptWithAny(watcher.decryptionKeys(), inFlight)).rejects.toThrow();

    // Within an overlap, a rotation with none ends it too: no earlier key decrypts.
    const third = await rotateEncryptionKey(dir, ca, { overlapDays: 5, now: clock.now() });
    watcher.reload();
    const toSecond = await sealedTo(rotated.current.certPem, '{"n":2}');
    expect(await decryptWithAny(watcher.decryptionKeys(), toSecond)).toBe('{"n":2}');
    const cut = await rotateEncryptionKey(dir, ca, { overlapDays: 0, now: clock.now() });
    expect(cut.previous).toBeNull();
    expect(readEncryptionKeys(dir, clock.now())!.previous).toBeNull();
    watcher.reload();
    expect(watcher.decryptionKeys()).toHaveLength(1);
    await expect(decryptWithAny(watcher.decryptionKeys(), toSecond)).rejects.toThrow();
    await expect(decryptWithAny(watcher.decryptionKeys(), await sealedTo(third.current.certPem, '{}'))).rejects.toThrow();
  });
});
