/**
 * DIP message signatures (src/security/signature.ts) and the dev PKI (src/security/pki.ts).
 * All key material is generated at test time in a temporary directory.
 */
import 'reflect-metadata'; // before @peculiar/x509 (tsyringe needs it)
import * as x509 from '@peculiar/x509';
import {
  X509Certificate,
  createHash,
  createPrivateKey,
  createSign,
  createVerify,
  generateKeyPair,
  generateKeyPairSync,
  webcrypto,
} from 'node:crypto';
import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCertificateAuthority,
  ensurePki,
  issueParticipantCertificate,
  issueServerCertificate,
  type KeyAndCert,
  type PkiMaterial,
} from '../src/security/pki.js';
import {
  DIP_HEADER_CONTENT_HASH,
  DIP_HEADER_SIGNATURE,
  DIP_HEADER_SIGNATURE_CERTIFICATE,
  DIP_HEADER_SIGNATURE_DATE,
  DIP_SIGNATURE_HEADERS,
  Signer,
  certificateCacheSize,
  certificateInfo,
  clearCertificateCache,
  contentHash,
  parseSubjectAltName,
  sameOriginForms,
  setCertificateCacheLimit,
  signatureHelp,
  splitPemBundle,
  stringToSign,
  verifyChain,
  verifyDipSignature,
  type DipSignatureHeaders,
  type VerifyInput,
  type VerifyResult,
} from '../src/security/signature.js';

const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const URL_033 = 'https://DIP.example:8443/dip-channel/IF-033';
const BODY = Buffer.from(JSON.stringify({ CommonBlock: { DIPMessage: { MessageType: 'IF-033' } }, payload: 'é€' }), 'utf8');
const MAX_SKEW = 5 * 60 * 1000;

let dir: string;
let pkiDir: string;
let pki: PkiMaterial;
let participant: KeyAndCert;
let otherCa: KeyAndCert;
let otherParticipant: KeyAndCert;
let legacyServer: KeyAndCert;
let participantSigner: Signer;
let dipSigner: Signer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'opendip-security-'));
  pkiDir = join(dir, 'pki');
  // Another CA with exactly the same subject name as ours: trust must come from the signature.
  [pki, otherCa] = await Promise.all([
    ensurePki(pkiDir, { environment: 'TEST', hostnames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] }),
    createCertificateAuthority({ commonName: 'OpenDIP TEST CA', environment: 'TEST', validDays: 30 }),
  ]);
  [participant, otherParticipant, legacyServer] = await Promise.all([
    issueParticipantCertificate(pki.ca, {
      organisation: 'Acme Supply',
      dipIds: ['SUPP01', 'SUPP01B', 'SUPP01'],
      environment: 'TEST',
      validDays: 30,
    }),
    issueParticipantCertificate(otherCa, { organisation: 'Mallory', dipIds: ['SUPP01'], environment: 'TEST', validDays: 30 }),
    legacyServerCertificate(pki.ca),
  ]);
  participantSigner = new Signer(participant.keyPem, participant.certPem);
  dipSigner = new Signer(pki.signing.keyPem, pki.signing.certPem);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function input(headers: Record<string, string | string[] | undefined>, over: Partial<VerifyInput> = {}): VerifyInput {
  return {
    method: 'POST',
    url: URL_033,
    body: BODY,
    headers,
    now: new Date(headers[DIP_HEADER_SIGNATURE_DATE] as string),
    maxSkewMs: MAX_SKEW,
    ...over,
  };
}

function expectFailure(r: VerifyResult, reason: string): void {
  if (r.ok) throw new Error(`expected ${reason}, verification succeeded`);
  expect(r.reason, r.detail).toBe(reason);
}

/** Signer written from the README description only, with plain node:crypto. */
function independentSign(method: string, url: string, body: Buffer, date: Date, keyPem: string, certPem: string) {
  const hash = createHash('sha256').update(body).digest('base64');
  const iso = date.toISOString();
  const toSign = [method, url.toLowerCase(), iso, hash].join(';');
  const signer = createSign('RSA-SHA256');
  signer.update(toSign, 'utf8');
  return {
    'X-DIP-Content-Hash': hash,
    'X-DIP-Signature-Date': iso,
    'X-DIP-Signature': signer.sign(keyPem, 'base64'),
    'X-DIP-Signature-Certificate': Buffer.from(certPem, 'utf8').toString('base64'),
  };
}

describe('primitives', () => {
  it('hashes the raw body bytes as base64 SHA-256', () => {
    expect(contentHash('')).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    expect(contentHash('abc')).toBe('ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=');
    expect(contentHash(Buffer.from('abc'))).toBe(contentHash('abc'));
  });

  it('builds the README example string to sign', () => {
    const hash = contentHash('{}');
    expect(stringToSign('POST', 'https://dip.example/dip-channel/if-033', '2025-06-27T14:29:09.061Z', hash)).toBe(
      `POST;https://dip.example/dip-channel/if-033;2025-06-27T14:29:09.061Z;${hash}`,
    );
    // URL lower-cased (whole URL, path included); method upper-cased; date and hash untouched.
    expect(stringToSign('post', 'HTTPS://DIP.Example:8443/dip-channel/IF-033?A=B', '2025-06-27T14:29:09.061Z', 'AbC+/=')).toBe(
      'POST;https://dip.example:8443/dip-channel/if-033?a=b;2025-06-27T14:29:09.061Z;AbC+/=',
    );
  });

  it('parses node subjectAltName strings, including quoted values', () => {
    expect(parseSubjectAltName(undefined)).toEqual([]);
    expect(
      parseSubjectAltName('DNS:localhost, IP Address:127.0.0.1, URI:urn:dip:participant:X1, URI:"urn:a,b\\"c", DNS:z'),
    ).toEqual([
      { type: 'DNS', value: 'localhost' },
      { type: 'IP Address', value: '127.0.0.1' },
      { type: 'URI', value: 'urn:dip:participant:X1' },
      { type: 'URI', value: 'urn:a,b"c' },
      { type: 'DNS', value: 'z' },
    ]);
  });

  it('splits PEM bundles', () => {
    expect(splitPemBundle(`junk\n${pki.ca.certPem}\n${participant.certPem}`)).toHaveLength(2);
    expect(splitPemBundle('nothing here')).toEqual([]);
  });
});

describe('sign / verify', () => {
  it('round-trips Signer -> verifyDipSignature', async () => {
    const now = new Date();
    const headers = await participantSigner.sign('POST', URL_033, BODY, now);
    expect(Object.keys(headers).sort()).toEqual([...DIP_SIGNATURE_HEADERS].sort());
    expect(headers[DIP_HEADER_SIGNATURE_DATE]).toBe(now.toISOString());
    expect(headers[DIP_HEADER_SIGNATURE_DATE]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(headers[DIP_HEADER_CONTENT_HASH]).toBe(contentHash(BODY));
    expect(Buffer.from(headers[DIP_HEADER_SIGNATURE_CERTIFICATE], 'base64').toString('utf8')).toBe(participant.certPem);

    const r = verifyDipSignature(input({ ...headers }));
    expect(r.ok, r.ok ? '' : r.detail).toBe(true);
    if (!r.ok) return;
    expect(r.certificate.dipIds).toEqual(['SUPP01', 'SUPP01B']);
    expect(r.certificate.fingerprint256).toBe(participantSigner.certificate.fingerprint256);
    // The verifier sees the URL with any case and a lower-case method from a sloppy caller.
    expect(verifyDipSignature(input({ ...headers }, { url: URL_033.toLowerCase() })).ok).toBe(true);
    // Upper-case header names (a plain record, not node's lower-cased IncomingHttpHeaders).
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifyDipSignature(input(upper)).ok).toBe(true);
    // Single-element arrays are fine.
    const arrays = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]]));
    expect(verifyDipSignature(input(arrays)).ok).toBe(true);
  });

  it('accepts a URL signed with or without https default port only where told it names the same origin', async () => {
    expect(sameOriginForms('https://dip.example/dip-channel/IF-021?a=1')).toEqual(['https://dip.example:443/dip-channel/IF-021?a=1']);
    expect(sameOriginForms('https://DIP.example:443/x')).toEqual(['https://DIP.example/x']);
    expect(sameOriginForms('https://[::1]:443/x')).toEqual(['https://[::1]/x']);
    expect(sameOriginForms('https://dip.example')).toEqual(['https://dip.example:443']);
    // Another port, or http (whose default is 80), is another origin.
    expect(sameOriginForms('https://dip.example:8443/x')).toEqual([]);
    expect(sameOriginForms('https://dip.example:4430/x')).toEqual([]);
    expect(sameOriginForms('http://dip.example/x')).toEqual([]);
    const url = 'https://dip.example/dip-channel/IF-021';
    const headers = await participantSigner.sign('POST', 'https://dip.example:443/dip-channel/IF-021', BODY);
    expect(verifyDipSignature(input({ ...headers }, { url })).ok).toBe(false);
    const r = verifyDipSignature(input({ ...headers }, { url, sameUrls: sameOriginForms(url) }));
    expect(r.ok, r.ok ? '' : r.detail).toBe(true);
    // The string that verified is the one reported (the archived evidence verifies again by it).
    expect(r.stringToSign).toContain('https://dip.example:443/dip-channel/if-021');
  });

  it('signs and verifies an empty body and a string body', async () => {
    const h1 = await dipSigner.sign('POST', 'https://supplier.example/webhook', Buffer.alloc(0));
    expect(h1[DIP_HEADER_CONTENT_HASH]).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    expect(
      verifyDipSignature(input({ ...h1 }, { url: 'https://supplier.example/webhook', body: Buffer.alloc(0) })).ok,
    ).toBe(true);
    const h2 = await dipSigner.sign('POST', URL_033, BODY.toString('utf8'));
    expect(verifyDipSignature(input({ ...h2 })).ok).toBe(true);
  });

  // The public Postman pre-request script participants used against the live DIP (the reference's
  // example of a client written by others) hashes the text "{}" when a request has no body: a DELETE of
  // a webhook, a GET. Its signature covers that hash; the DIP takes it for an empty body, and only there.
  it('takes the hash of "{}" for an empty body, as the public Postman pre-request script signs a request without one', () => {
    const now = new Date();
    const url = 'https://dip.example/dip-channel/if-021/pubconfig/1000000001';
    const postman = independentSign('DELETE', url, Buffer.from('{}'), now, participant.keyPem, participant.certPem);
    expect(postman['X-DIP-Content-Hash']).toBe('RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=');
    const r = verifyDipSignature(input(postman, { method: 'DELETE', url, body: Buffer.alloc(0), now }));
    expect(r.ok, r.ok ? '' : r.detail).toBe(true);
    // A body that is there is hashed as it is: "{}"'s hash does not stand for another one.
    expectFailure(verifyDipSignature(input(postman, { method: 'DELETE', url, body: Buffer.from('[]'), now })), 'bad-hash');
    // Nor does the empty body's hash stand for "{}".
    const empty = independentSign('DELETE', url, Buffer.alloc(0), now, participant.keyPem, participant.certPem);
    expectFailure(verifyDipSignature(input(empty, { method: 'DELETE', url, body: Buffer.from('{}'), now })), 'bad-hash');
  });

  it('signs the method upper-cased, as HTTP clients send it', async () => {
    const headers = await participantSigner.sign('post', URL_033, BODY);
    expect(verifyDipSignature(input({ ...headers }, { method: 'POST' })).ok).toBe(true);
  });

  it('accepts signatures from an independent node:crypto signer written from the README', () => {
    const now = new Date();
    const headers = independentSign('POST', URL_033, BODY, now, participant.keyPem, participant.certPem);
    const r = verifyDipSignature(input(headers, { now }));
    expect(r.ok, r.ok ? '' : r.detail).toBe(true);
    if (r.ok) expect(r.certificate.dipIds).toContain('SUPP01');
  });

  it('produces signatures that plain node:crypto verifies', async () => {
    const headers = await dipSigner.sign('POST', URL_033, BODY);
    const certPem = Buffer.from(headers[DIP_HEADER_SIGNATURE_CERTIFICATE], 'base64').toString('utf8');
    const publicKey = new X509Certificate(certPem).publicKey;
    const hash = createHash('sha256').update(BODY).digest('base64');
    expect(headers[DIP_HEADER_CONTENT_HASH]).toBe(hash);
    const expected = `POST;${URL_033.toLowerCase()};${headers[DIP_HEADER_SIGNATURE_DATE]};${hash}`;
    const v = createVerify('RSA-SHA256');
    v.update(expected, 'utf8');
    expect(v.verify(publicKey, headers[DIP_HEADER_SIGNATURE], 'base64')).toBe(true);
    // RSASSA-PKCS1-v1_5 is deterministic: the independent signer produces the same bytes.
    const again = independentSign(
      'POST',
      URL_033,
      BODY,
      new Date(headers[DIP_HEADER_SIGNATURE_DATE]),
      pki.signing.keyPem,
      pki.signing.certPem,
    );
    expect(again['X-DIP-Signature']).toBe(headers[DIP_HEADER_SIGNATURE]);
  });

  it('rejects a tampered body with bad-hash', async () => {
    const headers = await participantSigner.sign('POST', URL_033, BODY);
    const tampered = Buffer.from(BODY);
    tampered.writeUInt8(tampered.readUInt8(tampered.length - 2) ^ 0x01, tampered.length - 2);
    expectFailure(verifyDipSignature(input({ ...headers }, { body: tampered })), 'bad-hash');
    // Hash header recomputed for the tampered body: the signature no longer matches.
    expectFailure(
      verifyDipSignature(input({ ...headers, [DIP_HEADER_CONTENT_HASH]: contentHash(tampered) }, { body: tampered })),
      'bad-signature',
    );
  });

  it('rejects a wrong URL, method, date or signature (method-or-url where the doctor finds which, else bad-signature)', async () => {
    const headers = await participantSigner.sign('POST', URL_033, BODY);
    expectFailure(verifyDipSignature(input({ ...headers }, { url: 'https://dip.example:8443/dip-channel/IF-034' })), 'bad-signature');
    expectFailure(verifyDipSignature(input({ ...headers }, { url: 'https://dip.example/dip-channel/IF-033' })), 'bad-signature');
    expectFailure(verifyDipSignature(input({ ...headers }, { url: 'http://dip.example:8443/dip-channel/IF-033' })), 'method-or-url');
    expectFailure(verifyDipSignature(input({ ...headers }, { method: 'PUT' })), 'method-or-url');
    const shifted = new Date(Date.parse(headers[DIP_HEADER_SIGNATURE_DATE]) + 1).toISOString();
    expectFailure(verifyDipSignature(input({ ...headers, [DIP_HEADER_SIGNATURE_DATE]: shifted })), 'bad-signature');
    expectFailure(verifyDipSignature(input({ ...headers, [DIP_HEADER_SIGNATURE]: 'not base64!' })), 'bad-signature');
    const sig = Buffer.from(headers[DIP_HEADER_SIGNATURE], 'base64');
    sig.writeUInt8(sig.readUInt8(10) ^ 0xff, 10);
    expectFailure(verifyDipSignature(input({ ...headers, [DIP_HEADER_SIGNATURE]: sig.toString('base64') })), 'bad-signature');
    // Signed with one key, another certificate presented.
    const swapped = { ...headers, [DIP_HEADER_SIGNATURE_CERTIFICATE]: Buffer.from(pki.signing.certPem).toString('base64') };
    expectFailure(verifyDipSignature(input(swapped)), 'bad-signature');
  });

  describe('the signature doctor: which check failed, and the string the verifier checked', () => {
    const at = (headers: DipSignatureHeaders) => new Date(headers[DIP_HEADER_SIGNATURE_DATE]);
    const expected = (headers: DipSignatureHeaders, over: { method?: string; url?: string; hash?: string } = {}) =>
      stringToSign(over.method ?? 'POST', over.url ?? URL_033, headers[DIP_HEADER_SIGNATURE_DATE], over.hash ?? contentHash(BODY));
    const failure = (r: VerifyResult) => {
      if (r.ok) throw new Error('expected a refusal');
      return r;
    };

    it('every failure carries the exact string the verifier checks: METHOD;url;date;hash', async () => {
      const headers = await participantSigner.sign('POST', URL_033, BODY);
      expect(verifyDipSignature(input({ ...headers }))).toMatchObject({ ok: true, stringToSign: expected(headers) });
      expect(failure(verifyDipSignature(input({ ...headers }, { method: 'PUT' }))).stringToSign).toBe(expected(headers, { method: 'PUT' }));
      // A missing header shows as a placeholder.
      const { [DIP_HEADER_SIGNATURE_DATE]: _d, ...noDate } = headers;
      expect(failure(verifyDipSignature(input(noDate, { now: at(headers) }))).stringToSign).toBe(
        `POST;${URL_033.toLowerCase()};<x-dip-signature-date>;${contentHash(BODY)}`,
      );
      // A body that does not match its hash: the string a signer of this body signs (with the body's own hash).
      const other = Buffer.from('[]');
      const r = failure(verifyDipSignature(input({ ...headers }, { body: other })));
      expect([r.reason, r.stringToSign]).toEqual(['bad-hash', expected(headers, { hash: contentHash(other) })]);
    });

    it('tells the method that was signed', async () => {
      const headers = await participantSigner.sign('DELETE', URL_033, BODY);
      const r = failure(verifyDipSignature(input({ ...headers })));
      expect(r.reason).toBe('method-or-url');
      expect(r.detail).toBe(`it was signed for method DELETE, but the request is a POST; the signature is over '${expected(headers, { method: 'DELETE' })}'`);
    });

    it('tells a lower-case method, an URL not lower-cased, http for https, a missing port, a missing query, a trailing slash, the path alone', () => {
      const now = new Date();
      const sign = (method: string, url: string) => {
        const iso = now.toISOString();
        const hash = contentHash(BODY);
        const signature = createSign('RSA-SHA256').update(`${method};${url};${iso};${hash}`, 'utf8').sign(participant.keyPem, 'base64');
        return {
          [DIP_HEADER_CONTENT_HASH]: hash,
          [DIP_HEADER_SIGNATURE_DATE]: iso,
          [DIP_HEADER_SIGNATURE]: signature,
          [DIP_HEADER_SIGNATURE_CERTIFICATE]: Buffer.from(participant.certPem).toString('base64'),
        };
      };
      const called = 'https://dip.example:8443/dip-channel/if-033?x=1';
      const cases: Array<[string, string, RegExp]> = [
        ['post', called, /the method was signed in lower case/],
        ['POST', 'https://DIP.example:8443/dip-channel/IF-033?x=1', /the URL was signed as is: sign it lower-cased/],
        ['POST', 'http://dip.example:8443/dip-channel/if-033?x=1', /the URL was signed with http:\/\/ but called with https:\/\//],
        ['POST', 'https://dip.example/dip-channel/if-033?x=1', /the URL was signed without its port :8443/],
        ['POST', 'https://dip.example:8443/dip-channel/if-033', /the URL was signed without its query string \?x=1/],
        ['POST', 'https://dip.example:8443/dip-channel/if-033/?x=1', /the URL was signed with a trailing slash/],
        ['POST', '/dip-channel/if-033?x=1', /only the path was signed/],
      ];
      for (const [method, signedUrl, why] of cases) {
        const url = method === 'POST' && signedUrl.includes('DIP.example') ? signedUrl : called;
        const r = failure(verifyDipSignature(input(sign(method, signedUrl), { url, now })));
        expect(r.reason, signedUrl).toBe('method-or-url');
        expect(r.detail, signedUrl).toMatch(why);
        expect(r.detail).toContain(`the signature is over '${method};${signedUrl};`);
      }
    });

    it('tells a URL the caller reached the DIP by instead of its public URL', async () => {
      const headers = await participantSigner.sign('POST', 'https://10.0.0.5:8443/dip-channel/IF-033', BODY);
      const r = failure(verifyDipSignature(input({ ...headers }, { otherUrls: ['https://10.0.0.5:8443/dip-channel/IF-033'] })));
      expect(r.reason).toBe('method-or-url');
      expect(r.detail).toContain(`it was signed for https://10.0.0.5:8443/dip-channel/IF-033, but the DIP is called at ${URL_033}`);
    });

    it('tells a hash signed in hex', () => {
      const now = new Date();
      const hex = createHash('sha256').update(BODY).digest('hex');
      const signature = createSign('RSA-SHA256').update(`POST;${URL_033.toLowerCase()};${now.toISOString()};${hex}`).sign(participant.keyPem, 'base64');
      const headers = { ...independentSign('POST', URL_033, BODY, now, participant.keyPem, participant.certPem), 'X-DIP-Signature': signature };
      const r = failure(verifyDipSignature(input(headers, { now })));
      expect([r.reason, r.detail]).toEqual(['bad-signature', expect.stringContaining('the content hash was signed in hex')]);
    });

    it("tells another key from another string", async () => {
      const headers = await participantSigner.sign('POST', URL_033, BODY);
      const otherKey = { ...headers, [DIP_HEADER_SIGNATURE]: (await dipSigner.sign('POST', URL_033, BODY, at(headers)))[DIP_HEADER_SIGNATURE] };
      expect(failure(verifyDipSignature(input(otherKey))).detail).toMatch(/^x-dip-signature was not made with the private key of the certificate in x-dip-signature-certificate/);
      const otherString = await participantSigner.sign('POST', `${URL_033}/elsewhere`, BODY, at(headers));
      expect(failure(verifyDipSignature(input({ ...otherString }))).detail).toMatch(/^x-dip-signature was made with the certificate's key, but over another string than the DIP's/);
    });

    it('tells how far the clock is out', async () => {
      const headers = await participantSigner.sign('POST', URL_033, BODY);
      const r = failure(verifyDipSignature(input({ ...headers }, { now: new Date(at(headers).getTime() + MAX_SKEW + 12_345) })));
      expect(r.reason).toBe('clock-skew');
      expect(r.detail).toMatch(/is 312\.345 s behind server time .*; limit is 300\.000 s$/);
    });

    it('writes a help text within the published 500 characters that keeps the string whole', () => {
      const text = signatureHelp('bad-hash', 'x'.repeat(1000), `POST;https://dip.example/${'p'.repeat(150)};2025-06-27T14:29:09.061Z;${'h'.repeat(44)}`);
      expect(text.length).toBeLessThanOrEqual(500);
      expect(text).toMatch(/^message signature refused \(content hash\): x+… \| the DIP verifies: POST;https:\/\/dip\.example\/p{150};2025-06-27T14:29:09\.061Z;h{44}$/);
    });
  });

  it('bounds clock skew in both directions', async () => {
    const signedAt = new Date();
    const headers = await participantSigner.sign('POST', URL_033, BODY, signedAt);
    const at = (ms: number) => input({ ...headers }, { now: new Date(signedAt.getTime() + ms) });
    expect(verifyDipSignature(at(MAX_SKEW)).ok).toBe(true);
    expect(verifyDipSignature(at(-MAX_SKEW)).ok).toBe(true);
    expectFailure(verifyDipSignature(at(MAX_SKEW + 1)), 'clock-skew');
    expectFailure(verifyDipSignature(at(-MAX_SKEW - 1)), 'clock-skew');
    expectFailure(verifyDipSignature(at(24 * 3600 * 1000)), 'clock-skew');
  });

  it('rejects malformed dates with bad-date', async () => {
    const headers = await participantSigner.sign('POST', URL_033, BODY);
    for (const d of ['yesterday', '2025-06-27 14:29:09', '1751034549061', '2025-13-45T99:99:99.000Z']) {
      expectFailure(verifyDipSignature(input({ ...headers, [DIP_HEADER_SIGNATURE_DATE]: d }, { now: new Date() })), 'bad-date');
    }
  });

  it('reports missing, empty and duplicated headers as missing-header', async () => {
    const headers: Record<string, string | string[] | undefined> = { ...(await participantSigner.sign('POST', URL_033, BODY)) };
    for (const name of DIP_SIGNATURE_HEADERS) {
      const v = headers[name] as string;
      const check = (h: Record<string, string | string[] | undefined>) => {
        const r = verifyDipSignature(input(h, { now: new Date(headers[DIP_HEADER_SIGNATURE_DATE] as string) }));
        expectFailure(r, 'missing-header');
        if (!r.ok) expect(r.detail).toContain(name);
      };
      check({ ...headers, [name]: undefined });
      const { [name]: _omit, ...without } = headers;
      check(without);
      check({ ...headers, [name]: '  ' });
      check({ ...headers, [name]: [v, v] });
      check({ ...headers, [name]: [] });
      // node's http parser joins repeated custom headers with ", ".
      check({ ...headers, [name]: `${v}, ${v}` });
    }
    expectFailure(verifyDipSignature(input({}, { now: new Date() })), 'missing-header');
  });

  it('rejects a garbage certificate header with bad-certificate', async () => {
    const headers = await participantSigner.sign('POST', URL_033, BODY);
    for (const garbage of [
      'not a certificate!',
      'AAAA',
      Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').toString('base64'),
      Buffer.from(participant.keyPem).toString('base64'),
    ]) {
      expectFailure(verifyDipSignature(input({ ...headers, [DIP_HEADER_SIGNATURE_CERTIFICATE]: garbage })), 'bad-certificate');
    }
  });

  it('accepts the certificate header as base64 DER too', async () => {
    const headers = await participantSigner.sign('POST', URL_033, BODY);
    const der = new X509Certificate(participant.certPem).raw.toString('base64');
    expect(verifyDipSignature(input({ ...headers, [DIP_HEADER_SIGNATURE_CERTIFICATE]: der })).ok).toBe(true);
  });

  it('rejects a non-RSA certificate with bad-certificate', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify']));
    const ec = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=ec',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys,
      signingAlgorithm: alg,
    });
    const headers = await participantSigner.sign('POST', URL_033, BODY);
    const r = verifyDipSignature(
      input({ ...headers, [DIP_HEADER_SIGNATURE_CERTIFICATE]: Buffer.from(ec.toString('pem')).toString('base64') }),
    );
    expectFailure(r, 'bad-certificate');
    if (!r.ok) expect(r.detail).toMatch(/rsa/);
  });

  it('rejects expired and not-yet-valid certificates with bad-certificate', async () => {
    const info = participantSigner.certificate;
    const afterExpiry = new Date(info.notAfter.getTime() + 60_000);
    const expired = await participantSigner.sign('POST', URL_033, BODY, afterExpiry);
    const r = verifyDipSignature(input({ ...expired }, { now: afterExpiry }));
    expectFailure(r, 'bad-certificate');
    if (!r.ok) expect(r.detail).toMatch(/expired/);
    // Only the validity window is at fault: the check can be turned off.
    expect(verifyDipSignature(input({ ...expired }, { now: afterExpiry, checkCertificateValidity: false })).ok).toBe(true);

    const beforeStart = new Date(info.notBefore.getTime() - 60_000);
    const early = await participantSigner.sign('POST', URL_033, BODY, beforeStart);
    expectFailure(verifyDipSignature(input({ ...early }, { now: beforeStart })), 'bad-certificate');
    // ... and a cached, still-valid certificate is re-checked at every call.
    expect(verifyDipSignature(input({ ...(await participantSigner.sign('POST', URL_033, BODY)) })).ok).toBe(true);
  });

  it('keeps the parsed-certificate cache bounded', async () => {
    clearCertificateCache();
    expect(certificateCacheSize()).toBe(0);
    try {
      setCertificateCacheLimit(2);
      const p = await participantSigner.sign('POST', URL_033, BODY);
      const d = await dipSigner.sign('POST', URL_033, BODY);
      expect(verifyDipSignature(input({ ...p })).ok).toBe(true);
      expect(verifyDipSignature(input({ ...d })).ok).toBe(true);
      expect(certificateCacheSize()).toBe(2);
      expectFailure(verifyDipSignature(input({ ...p, [DIP_HEADER_SIGNATURE_CERTIFICATE]: 'AAAA' })), 'bad-certificate');
      expect(certificateCacheSize()).toBe(2);
      // Evicted entries are parsed again.
      expect(verifyDipSignature(input({ ...p })).ok).toBe(true);
      expect(verifyDipSignature(input({ ...d })).ok).toBe(true);
      setCertificateCacheLimit(1);
      expect(certificateCacheSize()).toBe(1);
      // Cached certificate info is shared, so it is frozen.
      const r = verifyDipSignature(input({ ...d }));
      expect(r.ok && Object.isFrozen(r.certificate) && Object.isFrozen(r.certificate.dipIds)).toBe(true);
    } finally {
      setCertificateCacheLimit(10_000);
      clearCertificateCache();
    }
  });

  it('verifies the signature of many concurrent signs (thread pool)', async () => {
    const all: DipSignatureHeaders[] = await Promise.all(
      Array.from({ length: 32 }, (_, i) => participantSigner.sign('POST', `${URL_033}?i=${i}`, `${i}`)),
    );
    all.forEach((h, i) => {
      expect(verifyDipSignature(input({ ...h }, { url: `${URL_033}?i=${i}`, body: Buffer.from(`${i}`) })).ok).toBe(true);
    });
  });

  it('refuses a Signer whose key does not match the certificate', () => {
    expect(() => new Signer(participant.keyPem, pki.signing.certPem)).toThrow(/does not match/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    expect(() => new Signer(ec as string, participant.certPem)).toThrow(/RSA/);
  });
});

describe('certificates and trust', () => {
  it('extracts certificate info and DIP IDs from urn:dip:participant SANs', () => {
    const info = certificateInfo(participant.certPem);
    expect(info.dipIds).toEqual(['SUPP01', 'SUPP01B']);
    expect(info.subject).toBe('CN=SUPP01, O=Acme Supply, OU=TEST');
    expect(info.issuer).toBe('CN=OpenDIP TEST CA, O=OpenDIP, OU=TEST');
    expect(info.fingerprint256).toMatch(/^[0-9A-F]{64}$/);
    expect(info.fingerprint256).toBe(createHash('sha256').update(new X509Certificate(participant.certPem).raw).digest('hex').toUpperCase());
    expect(info.serialNumber).toMatch(/^[0-9A-F]+$/);
    expect(info.notAfter.getTime() - info.notBefore.getTime()).toBeGreaterThan(29 * 86_400_000);
    expect(info.pem).toContain('-----BEGIN CERTIFICATE-----');
    expect(certificateInfo(Buffer.from(participant.certPem)).fingerprint256).toBe(info.fingerprint256);
    expect(certificateInfo(pki.server.certPem).dipIds).toEqual([]);
    expect(() => certificateInfo('garbage')).toThrow();
  });

  it('verifyChain trusts certificates from our CA only', () => {
    expect(verifyChain(participant.certPem, [pki.ca.certPem])).toBe(true);
    expect(verifyChain(pki.server.certPem, [pki.ca.certPem])).toBe(true);
    expect(verifyChain(pki.signing.certPem, [pki.ca.certPem])).toBe(true);
    // Same issuer name, different key.
    expect(verifyChain(otherParticipant.certPem, [pki.ca.certPem])).toBe(false);
    expect(verifyChain(participant.certPem, [otherCa.certPem])).toBe(false);
    // Bundles and lists of CAs.
    expect(verifyChain(otherParticipant.certPem, [pki.ca.certPem, otherCa.certPem])).toBe(true);
    expect(verifyChain(participant.certPem, [otherCa.certPem + pki.ca.certPem])).toBe(true);
    // A leaf is not a CA.
    expect(verifyChain(participant.certPem, [pki.server.certPem])).toBe(false);
    // Validity windows.
    const notAfter = certificateInfo(participant.certPem).notAfter;
    expect(verifyChain(participant.certPem, [pki.ca.certPem], new Date(notAfter.getTime() + 1000))).toBe(false);
    expect(verifyChain('garbage', [pki.ca.certPem])).toBe(false);
    expect(verifyChain(participant.certPem, ['garbage'])).toBe(false);
    expect(verifyChain(participant.certPem, [])).toBe(false);
  });

  it('issues certificates with the key usages each role needs', () => {
    const server = new X509Certificate(pki.server.certPem);
    expect(server.keyUsage).toEqual(expect.arrayContaining([EKU_SERVER_AUTH, EKU_CLIENT_AUTH]));
    expect(server.ca).toBe(false);
    const sans = parseSubjectAltName(server.subjectAltName);
    expect(sans).toEqual(
      expect.arrayContaining([
        { type: 'DNS', value: 'localhost' },
        { type: 'IP Address', value: '127.0.0.1' },
        { type: 'IP Address', value: '0:0:0:0:0:0:0:1' },
      ]),
    );

    const p = new X509Certificate(participant.certPem);
    expect(p.keyUsage).toContain(EKU_CLIENT_AUTH);
    expect(p.ca).toBe(false);
    const ku = new x509.X509Certificate(participant.certPem).getExtension(x509.KeyUsagesExtension);
    expect(ku).toBeTruthy();
    expect((ku!.usages & x509.KeyUsageFlags.digitalSignature) !== 0).toBe(true);

    const signingKu = new x509.X509Certificate(pki.signing.certPem).getExtension(x509.KeyUsagesExtension);
    expect((signingKu!.usages & x509.KeyUsageFlags.digitalSignature) !== 0).toBe(true);
    expect(new X509Certificate(pki.ca.certPem).ca).toBe(true);

    // Authority key identifier of the leaf = subject key identifier of the CA.
    const caSki = new x509.X509Certificate(pki.ca.certPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    const aki = new x509.X509Certificate(participant.certPem).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
    expect(caSki).toBeTruthy();
    expect(aki).toBe(caSki);
  });

  it('never issues a leaf that outlives its CA', async () => {
    const leaf = await issueParticipantCertificate(otherCa, {
      organisation: 'Long',
      dipIds: ['LONG1'],
      environment: 'TEST',
      validDays: 3650,
    });
    expect(certificateInfo(leaf.certPem).notAfter.getTime()).toBeLessThanOrEqual(certificateInfo(otherCa.certPem).notAfter.getTime());
  });

  it('validates participant certificate requests', async () => {
    await expect(issueParticipantCertificate(pki.ca, { organisation: 'X', dipIds: [], environment: 'TEST', validDays: 1 })).rejects.toThrow(
      /at least one DIP ID/,
    );
    await expect(
      issueParticipantCertificate(pki.ca, { organisation: 'X', dipIds: ['a b'], environment: 'TEST', validDays: 1 }),
    ).rejects.toThrow(/invalid DIP ID/);
    await expect(
      issueParticipantCertificate(pki.ca, { organisation: 'X', dipIds: ['A'], environment: 'TEST', validDays: 0 }),
    ).rejects.toThrow(/validDays/);
    await expect(issueServerCertificate(pki.ca, { hostnames: [], ipAddresses: [], validDays: 1 })).rejects.toThrow(/at least one/);
  });
});

describe('participant certificate from a CSR', () => {
  const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]) };

  async function makeCsr(modulusLength: number) {
    const keys = (await webcrypto.subtle.generateKey({ ...RSA, modulusLength }, true, ['sign', 'verify']));
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=ignored by the CA, O=Participant Ltd',
      keys,
      signingAlgorithm: RSA,
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
    return { csrPem: csr.toString('pem'), keyPem, spki: Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)) };
  }

  let good: Awaited<ReturnType<typeof makeCsr>>;
  let short: Awaited<ReturnType<typeof makeCsr>>;
  beforeAll(async () => {
    [good, short] = await Promise.all([makeCsr(2048), makeCsr(1024)]);
  });

  it('certifies the CSR public key, and the participant can sign with its own key', async () => {
    const { csrPem, keyPem, spki } = good;
    const issued = await issueParticipantCertificate(pki.ca, {
      organisation: 'Participant Ltd',
      dipIds: ['CSR001'],
      environment: 'TEST',
      validDays: 10,
      csrPem,
    });
    expect(issued.keyPem).toBe('');
    const cert = new X509Certificate(issued.certPem);
    expect(cert.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    expect(certificateInfo(issued.certPem).dipIds).toEqual(['CSR001']);
    expect(certificateInfo(issued.certPem).subject).toBe('CN=CSR001, O=Participant Ltd, OU=TEST');
    expect(verifyChain(issued.certPem, [pki.ca.certPem])).toBe(true);

    const headers = await new Signer(keyPem, issued.certPem).sign('POST', URL_033, BODY);
    const r = verifyDipSignature(input({ ...headers }));
    expect(r.ok && r.certificate.dipIds).toEqual(['CSR001']);
  });

  it('refuses a CSR with a bad signature, a short key or a non-RSA key', async () => {
    const der = Buffer.from(new x509.Pkcs10CertificateRequest(good.csrPem).rawData);
    der.writeUInt8(der.readUInt8(der.length - 5) ^ 0xff, der.length - 5); // inside the signature value
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const opts = { organisation: 'X', dipIds: ['CSR002'], environment: 'TEST', validDays: 1 };
    await expect(issueParticipantCertificate(pki.ca, { ...opts, csrPem: tampered })).rejects.toThrow(/CSR signature/);

    await expect(issueParticipantCertificate(pki.ca, { ...opts, csrPem: short.csrPem })).rejects.toThrow(/1024 bits/);

    const ecAlg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const ecKeys = (await webcrypto.subtle.generateKey(ecAlg, false, ['sign', 'verify']));
    const ecCsr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=ec', keys: ecKeys, signingAlgorithm: ecAlg });
    await expect(issueParticipantCertificate(pki.ca, { ...opts, csrPem: ecCsr.toString('pem') })).rejects.toThrow(/RSA/);
  });
});

describe('ensurePki', () => {
  async function snapshot(d: string): Promise<Map<string, { data: string; mtimeMs: number; mode: number }>> {
    const out = new Map<string, { data: string; mtimeMs: number; mode: number }>();
    for (const f of (await readdir(d)).sort()) {
      const s = await stat(join(d, f));
      out.set(f, { data: await readFile(join(d, f), 'utf8'), mtimeMs: s.mtimeMs, mode: s.mode & 0o777 });
    }
    return out;
  }

  it('created the material on the first call, with private keys readable by the owner only', async () => {
    expect(pki.created).toBe(true);
    const snap = await snapshot(pkiDir);
    expect([...snap.keys()].sort()).toEqual(
      ['ca.cert.pem', 'ca.key.pem', 'dip-signing.cert.pem', 'dip-signing.key.pem', 'server.cert.pem', 'server.key.pem'].sort(),
    );
    for (const [f, { mode }] of snap) if (f.endsWith('.key.pem')) expect(mode, f).toBe(0o600);
    expect(snap.get('server.cert.pem')?.data).toBe(pki.server.certPem);
  });

  it('is idempotent: a second call creates nothing and returns the same material', async () => {
    const before = await snapshot(pkiDir);
    const again = await ensurePki(pkiDir, {
      environment: 'TEST',
      hostnames: ['LOCALHOST'],
      ipAddresses: ['127.0.0.1', '0:0:0:0:0:0:0:1'],
    });
    expect(again.created).toBe(false);
    expect(again.ca).toEqual(pki.ca);
    expect(again.server).toEqual(pki.server);
    expect(again.signing).toEqual(pki.signing);
    expect(await snapshot(pkiDir)).toEqual(before);
  });

  it('re-issues only the server certificate when a hostname is added', async () => {
    const d = join(dir, 'pki-hosts');
    await cp(pkiDir, d, { recursive: true });
    const first = await ensurePki(d, { environment: 'TEST', hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    expect(first.created).toBe(false);
    const inodes = async () => Promise.all(['server.key.pem', 'server.cert.pem'].map(async (f) => (await stat(join(d, f))).ino));
    const before = await inodes();
    const second = await ensurePki(d, {
      environment: 'TEST',
      hostnames: ['localhost', 'dip.test.example'],
      ipAddresses: ['127.0.0.1'],
    });
    expect(second.created).toBe(true);
    // Replaced by a rename, not rewritten in place: a running DIP's certificate watcher, or a start killed
    // half-way, never reads half a file.
    expect((await inodes()).map((n, i) => n !== before[i])).toEqual([true, true]);
    expect(second.ca).toEqual(first.ca);
    expect(second.signing).toEqual(first.signing);
    expect(second.server.certPem).not.toBe(first.server.certPem);
    expect(await readFile(join(d, 'server.cert.pem'), 'utf8')).toBe(second.server.certPem);
    const sans = parseSubjectAltName(new X509Certificate(second.server.certPem).subjectAltName);
    expect(sans).toEqual(expect.arrayContaining([{ type: 'DNS', value: 'dip.test.example' }, { type: 'DNS', value: 'localhost' }]));
    expect(verifyChain(second.server.certPem, [second.ca.certPem])).toBe(true);

    // Stable again afterwards; a subset of the names does not re-issue either.
    expect((await ensurePki(d, { environment: 'TEST', hostnames: ['dip.test.example'], ipAddresses: [] })).created).toBe(false);
  });

  it('re-issues leaves that do not chain to the CA or lack clientAuth, and everything when the CA is broken', async () => {
    const d = join(dir, 'pki-repair');
    await cp(pkiDir, d, { recursive: true });
    const first = await ensurePki(d, { environment: 'TEST', hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    expect(first.created).toBe(false);

    // Signing certificate from another CA (same issuer name), server key swapped for another key.
    await writeFile(join(d, 'dip-signing.key.pem'), otherParticipant.keyPem);
    await writeFile(join(d, 'dip-signing.cert.pem'), otherParticipant.certPem);
    await writeFile(join(d, 'server.key.pem'), participant.keyPem);
    const repaired = await ensurePki(d, { environment: 'TEST', hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    expect(repaired.created).toBe(true);
    expect(repaired.ca).toEqual(first.ca);
    expect(repaired.signing.certPem).not.toBe(otherParticipant.certPem);
    expect(verifyChain(repaired.signing.certPem, [first.ca.certPem])).toBe(true);
    expect(new X509Certificate(repaired.server.certPem).checkPrivateKey(createPrivateKey(repaired.server.keyPem))).toBe(true);
    expect(repaired.server.certPem).not.toBe(first.server.certPem);

    // A server certificate issued before the clientAuth EKU was added (serverAuth only).
    const legacy = legacyServer;
    await writeFile(join(d, 'server.key.pem'), legacy.keyPem);
    await writeFile(join(d, 'server.cert.pem'), legacy.certPem);
    expect(verifyChain(legacy.certPem, [first.ca.certPem])).toBe(true);
    const upgraded = await ensurePki(d, { environment: 'TEST', hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    expect(upgraded.created).toBe(true);
    expect(upgraded.server.certPem).not.toBe(legacy.certPem);
    expect(new X509Certificate(upgraded.server.certPem).keyUsage).toContain(EKU_CLIENT_AUTH);

    // CA key replaced by garbage: everything is regenerated.
    await writeFile(join(d, 'ca.key.pem'), 'garbage');
    const regenerated = await ensurePki(d, { environment: 'TEST', hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    expect(regenerated.created).toBe(true);
    expect(regenerated.ca.certPem).not.toBe(first.ca.certPem);
    expect(verifyChain(regenerated.server.certPem, [regenerated.ca.certPem])).toBe(true);
    expect(verifyChain(regenerated.signing.certPem, [regenerated.ca.certPem])).toBe(true);
  });
});

/** What pki.ts used to issue: serverAuth EKU only. */
async function legacyServerCertificate(ca: KeyAndCert): Promise<KeyAndCert> {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(ca.keyPem).export({ type: 'pkcs8', format: 'der' }),
    alg,
    false,
    ['sign'],
  );
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0a0b0c',
    subject: 'CN=localhost',
    issuer: caCert.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 30 * 86_400_000),
    publicKey: spki,
    signingKey: caKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
      new x509.AuthorityKeyIdentifierExtension(caCert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId),
    ],
  });
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, certPem: cert.toString('pem') };
}

describe('mutual TLS', () => {
  // The strict server is what the DIP runs. The lenient one completes every handshake and reports
  // why the client certificate would have been refused, so the tests can check the reason.
  let strict: tls.Server;
  let lenient: tls.Server;
  let strictPort: number;
  let lenientPort: number;
  let strictAccepted = 0;

  async function listen(rejectUnauthorized: boolean): Promise<[tls.Server, number]> {
    const server = tls.createServer({
      key: pki.server.keyPem,
      cert: pki.server.certPem,
      ca: [pki.ca.certPem],
      requestCert: true,
      rejectUnauthorized,
    });
    server.on('secureConnection', (socket) => {
      if (rejectUnauthorized) strictAccepted++;
      const peer = socket.getPeerCertificate();
      socket.end(socket.authorized ? `authorized:${[peer.subject?.CN ?? ''].flat().join(',')}` : `refused:${String(socket.authorizationError)}`);
    });
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return [server, (server.address() as AddressInfo).port];
  }

  beforeAll(async () => {
    [strict, strictPort] = await listen(true);
    [lenient, lenientPort] = await listen(false);
  });

  afterAll(async () => {
    for (const s of [strict, lenient]) if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  });

  type Outcome = { ok: true; data: string } | { ok: false; error: string };

  function connect(port: number, opts: tls.ConnectionOptions, maxVersion: tls.SecureVersion = 'TLSv1.3'): Promise<Outcome> {
    return new Promise((resolve) => {
      let data = '';
      let done = false;
      const finish = (o: Outcome) => {
        if (done) return;
        done = true;
        socket.destroy();
        resolve(o);
      };
      const socket = tls.connect({ host: '127.0.0.1', port, ca: [pki.ca.certPem], maxVersion, ...opts });
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (data += chunk));
      const closed = () => finish(data ? { ok: true, data } : { ok: false, error: 'closed without data' });
      socket.on('end', closed);
      socket.on('close', closed);
      socket.on('error', (err) => finish({ ok: false, error: err.message }));
    });
  }

  it('accepts a participant client certificate (TLS 1.3 and 1.2), checking the server name against the IP SAN', async () => {
    for (const v of ['TLSv1.3', 'TLSv1.2'] as const) {
      const r = await connect(strictPort, { key: participant.keyPem, cert: participant.certPem }, v);
      expect(r, v).toEqual({ ok: true, data: 'authorized:SUPP01' });
    }
    const byName = await connect(strictPort, { key: participant.keyPem, cert: participant.certPem, servername: 'localhost' });
    expect(byName.ok).toBe(true);
  });

  it('accepts the DIP server certificate as a client certificate (outbound mTLS webhooks)', async () => {
    const r = await connect(strictPort, { key: pki.server.keyPem, cert: pki.server.certPem });
    expect(r).toEqual({ ok: true, data: 'authorized:localhost' });
  });

  it('refuses a client certificate from another CA, a serverAuth-only certificate and no certificate', async () => {
    const legacy = legacyServer;
    const cases: Array<[string, tls.ConnectionOptions, RegExp]> = [
      [
        'other CA',
        { key: otherParticipant.keyPem, cert: otherParticipant.certPem },
        /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER|SIGNATURE_FAILURE/,
      ],
      ['serverAuth only', { key: legacy.keyPem, cert: legacy.certPem }, /INVALID_PURPOSE/],
      // node reports UNABLE_TO_GET_ISSUER_CERT when the client sent no certificate at all.
      ['no certificate', {}, /UNABLE_TO_GET_ISSUER_CERT/],
    ];
    const acceptedBefore = strictAccepted;
    for (const [name, opts, reason] of cases) {
      for (const v of ['TLSv1.3', 'TLSv1.2'] as const) {
        const r = await connect(strictPort, opts, v);
        expect(r.ok, `${name} ${v}`).toBe(false);
      }
      const diag = await connect(lenientPort, opts);
      expect(diag.ok && diag.data, name).toMatch(/^refused:/);
      if (diag.ok) expect(diag.data, name).toMatch(reason);
    }
    // The strict server never handed any of these connections to the application.
    expect(strictAccepted).toBe(acceptedBefore);
  });

  it('is refused by a client that trusts another CA only', async () => {
    const r = await connect(strictPort, { key: participant.keyPem, cert: participant.certPem, ca: [otherCa.certPem] });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/self[- ]signed|unable to (get|verify)|signature/i);
  });
});
