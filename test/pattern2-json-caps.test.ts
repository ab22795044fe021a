import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, jsonCountsOf } from '../src/config.js';
import { ENCRYPTED_BLOCK, openPattern2 } from '../src/pipeline/patterns.js';
import { encryptTo } from '../src/security/payload-encryption.js';

// Anyone can encrypt to the DIP's public key: the decrypted CustomBlock is sender input like the body,
// and is held to the same depth, member and value caps before it is parsed.
describe('pattern 2: the decrypted CustomBlock is scanned before parsing', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keys = [{ key: privateKey, thumbprint: 'x' }];
  const limits = { maxDepth: DEFAULTS.http.maxJsonDepth, counts: jsonCountsOf(DEFAULTS) };
  const sealed = async (block: string) => ({ payload: { CommonBlock: {}, [ENCRYPTED_BLOCK]: await encryptTo(publicKey, block) } });

  it('refuses a block of an object with too many members, naming the field', async () => {
    const block = `{${Array.from({ length: 200_000 }, (_, i) => `"k${i}":0`).join(',')}}`;
    const r = await openPattern2(await sealed(block), keys, limits);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.help).toBe(`payload.${ENCRYPTED_BLOCK}, decrypted: an object of the JSON body holds more than the limit of 1000 members`);
  });

  it('refuses a block nested too deeply', async () => {
    const r = await openPattern2(await sealed(`${'['.repeat(100)}${']'.repeat(100)}`), keys, limits);
    expect(!r.ok && r.help).toMatch(/^payload\.EncryptedCustomBlock, decrypted: the JSON body nests arrays and objects deeper than the limit of \d+ levels$/);
  });

  it('opens an ordinary block', async () => {
    const r = await openPattern2(await sealed(JSON.stringify({ a: [1, 2, { b: 'c' }] })), keys, limits);
    expect(r.ok && (r.item as { payload: { CustomBlock: unknown } }).payload.CustomBlock).toEqual({ a: [1, 2, { b: 'c' }] });
  });
});
