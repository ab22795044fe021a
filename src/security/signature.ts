/**
 * DIP message signing (both directions: participant -> DIP requests and DIP -> participant webhooks).
 *
 * Scheme (see shared/reference/README.md, "Message signing"):
 *   X-DIP-Content-Hash          = base64(SHA-256(raw body bytes))
 *   X-DIP-Signature-Date        = UTC ISO-8601 with milliseconds (Date.toISOString())
 *   string to sign              = `${METHOD.toUpperCase()};${fullUrl.toLowerCase()};${date};${contentHash}`
 *   X-DIP-Signature             = base64(RSASSA-PKCS1-v1_5 / SHA-256 over the UTF-8 string to sign)
 *   X-DIP-Signature-Certificate = base64(PEM text of the signer's certificate)
 *
 * An answer the DIP signs (a pull or replay answer) is signed over a string of its own,
 * `RESPONSE ${status};` followed by the string of the request it answers and `;` and the continuation
 * token it names (answerStringToSign), so that no signature over an answer is ever one over a request or
 * webhook call, nor the other way round.
 *
 * An alarm or maintenance notice (an alarm subscription's webhook URL) is signed over `NOTICE;` followed by
 * the string of the call it is (noticeStringToSign): a participant chooses that URL, and a notice signed as a
 * delivery and pointed at another recipient's message webhook would verify there as a genuine DIP call.
 *
 * This module is on the hot path, so it only uses node:crypto:
 *  - signing runs on the libuv thread pool (async crypto.sign callback form);
 *  - verification is synchronous (~50 µs for RSA-2048) with a bounded cache of parsed certificates.
 *
 * Conventions:
 *  - CertificateInfo.fingerprint256 and serialNumber are UPPER-case hex without colons.
 *  - CertificateInfo.subject / issuer are node's RDN lines joined with ", " (e.g. "CN=X, O=Y, OU=DEV").
 */
import {
  X509Certificate,
  constants,
  createHash,
  createPrivateKey,
  publicDecrypt,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';

export const DIP_HEADER_CONTENT_HASH = 'x-dip-content-hash';
export const DIP_HEADER_SIGNATURE_DATE = 'x-dip-signature-date';
export const DIP_HEADER_SIGNATURE = 'x-dip-signature';
export const DIP_HEADER_SIGNATURE_CERTIFICATE = 'x-dip-signature-certificate';

export const DIP_SIGNATURE_HEADERS = [
  DIP_HEADER_CONTENT_HASH,
  DIP_HEADER_SIGNATURE_DATE,
  DIP_HEADER_SIGNATURE,
  DIP_HEADER_SIGNATURE_CERTIFICATE,
] as const;

export interface DipSignatureHeaders {
  'x-dip-content-hash': string;
  'x-dip-signature-date': string;
  'x-dip-signature': string;
  'x-dip-signature-certificate': string;
}

export interface CertificateInfo {
  /** SHA-256 fingerprint of the DER certificate, UPPER-case hex, no colons. */
  fingerprint256: string;
  /** Subject DN, RDNs joined with ", " e.g. "CN=1234567, O=Acme, OU=DEV". */
  subject: string;
  issuer: string;
  /** UPPER-case hex serial number as reported by node. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** DIP IDs from SAN URIs `urn:dip:participant:<DIPID>` (order preserved, de-duplicated). */
  dipIds: string[];
  /** Certificate in PEM form (normalised by node). */
  pem: string;
}

export type VerifyFailureReason =
  | 'missing-header'
  | 'bad-hash'
  | 'bad-date'
  | 'clock-skew'
  | 'bad-certificate'
  /** Made with the certificate's key, over the request with another method or URL (the doctor found which). */
  | 'method-or-url'
  /** Does not verify: made with another key, or over another string than the doctor could guess. */
  | 'bad-signature';

export type VerifyResult =
  | {
      ok: true;
      certificate: CertificateInfo;
      stringToSign: string;
      /** The signature's bytes in canonical base64 (padded, unused bits zero): what a replay check must key on. */
      signature: string;
      /** The signed date less `now`: positive when the signer's clock is ahead of the verifier's. */
      dateSkewMs: number;
    }
  | {
      ok: false;
      reason: VerifyFailureReason;
      detail: string;
      /**
       * The string the verifier checks the signature against (`METHOD;url;date;hash`, nothing secret), with
       * `<header name>` where a header it needs is missing: what the caller should have signed.
       */
      stringToSign: string;
      /**
       * The signed date less `now`, once the date was read (absent: refused before, a header missing or
       * malformed): with reason 'clock-skew' beyond maxSkewMs, else within it. What the DIP's own clock
       * check counts (src/pipeline/clock-check.ts).
       */
      dateSkewMs?: number;
    };

export interface VerifyInput {
  method: string;
  /** The full URL the client called (scheme, host, port, path[, query]). Case is irrelevant. */
  url: string;
  /**
   * The raw body, whose hash must match X-DIP-Content-Hash; null when the body is streamed (a large
   * publication): the signature then covers the hash the caller declared, and the caller checks the
   * body against it once read.
   */
  body: Buffer | null;
  headers: Record<string, string | string[] | undefined>;
  now: Date;
  maxSkewMs: number;
  /**
   * Reject certificates outside their notBefore/notAfter window at `now` (reason 'bad-certificate').
   * Default true. Chain of trust is NOT checked here: use verifyChain() (or a trust cache keyed by
   * CertificateInfo.fingerprint256) and check that dipIds belong to the sender.
   */
  checkCertificateValidity?: boolean;
  /**
   * Other URLs the caller may have signed by mistake (e.g. the Host-header URL when the DIP sits behind a
   * proxy with a configured public URL): only used to say what went wrong when a signature fails.
   */
  otherUrls?: readonly string[];
  /**
   * The same URL written another way that a caller may equally have signed, accepted like `url`
   * (sameOriginForms: with or without https's default port). Tried only when `url` does not verify, so it
   * costs nothing on the common road.
   */
  sameUrls?: readonly string[];
  /**
   * Set to verify an answer the DIP signed (answerStringToSign): its HTTP status and the X-Continuation-Token
   * it came with; `method` and `url` are then those of the request it answers. Unset: a request or webhook call.
   */
  answer?: SignedAnswer;
  /** Set to verify an alarm or maintenance notice (noticeStringToSign) rather than a request or a delivery. */
  notice?: boolean;
}

/**
 * An https URL written the other way round as to its default port: `https://dip.example:443/p` and
 * `https://dip.example/p` name the same origin, and a caller signs whichever its tooling wrote (curl and a
 * URL typed with :443 keep it; WHATWG URL parsers and Node's Host header drop it). Empty for other URLs.
 */
export function sameOriginForms(url: string): string[] {
  const m = /^(https:\/\/[^/?#:]+|https:\/\/\[[^\]/]*\])(:443)?([/?#].*)?$/is.exec(url);
  if (!m) return [];
  return [m[2] ? `${m[1]!}${m[3] ?? ''}` : `${m[1]!}:443${m[3] ?? ''}`];
}

export const DIP_URN_PREFIX = 'urn:dip:participant:';

// ---------------------------------------------------------------------------------------------
// Primitives

/** base64(SHA-256(raw bytes)). Strings are hashed as UTF-8. */
export function contentHash(body: Buffer | string): string {
  return createHash('sha256').update(body).digest('base64');
}

/**
 * One spelling of an X-DIP-Signature's bytes: padded base64 with the unused bits of its last letter zero.
 * The verifier decodes leniently (padding optional, those bits ignored, as most base64 decoders do), so a
 * 256-byte signature has dozens of spellings that all verify: a replay check keyed on the header text as
 * sent would take each of them as a new signature. Keyed on this, every spelling is the one signature.
 */
export function canonicalSignature(headerValue: string): string {
  return Buffer.from(headerValue.trim(), 'base64').toString('base64');
}

/**
 * `${METHOD};${url lower-cased};${date};${hash}`. The method is upper-cased: HTTP clients (undici,
 * fetch) send standard methods upper-case whatever the caller wrote, and node only parses upper-case
 * methods, so `sign('post', ...)` must sign what actually goes on the wire.
 */
export function stringToSign(method: string, url: string, date: string, hash: string): string {
  return `${method.toUpperCase()};${url.toLowerCase()};${date};${hash}`;
}

/**
 * `RESPONSE ${status};${METHOD};${url lower-cased};${date};${hash};${continuation}`: what the DIP signs an
 * answer over, the answer's status and date and the hash of its bytes, with the method and URL of the
 * request it answers, and the page it names next (a 206 replay page's X-Continuation-Token; empty on any
 * other answer), so that one who can alter headers cannot send the client to another page, nor end or
 * continue a replay. Unambiguous: every field before it is the client's own (method, URL) or has no ';'
 * (status, an ISO-8601 date, base64), so the last field is all that follows the hash. Domain separation: a request's (a webhook call's) string starts with its method and a ';', a
 * method is an HTTP token (RFC 9110 5.6.2), which has neither ';' nor a space, and this string's first
 * field is `RESPONSE 200`, with a space: no method, hence no request at any URL, has this string, so a
 * signed answer is never a signed webhook call (a participant choosing the URL and body of its pull or
 * replay cannot get the DIP to sign a call to someone else's webhook). The status binds a 206 page as one.
 */
export function answerStringToSign(answer: SignedAnswer, method: string, url: string, date: string, hash: string): string {
  return `RESPONSE ${answer.status};${stringToSign(method, url, date, hash)};${answer.continuation ?? ''}`;
}

/**
 * `NOTICE;${METHOD};${url lower-cased};${date};${hash}`: what the DIP signs an alarm or maintenance notice
 * over. Domain separation: a request's (a delivery's) string with the method `NOTICE` would have the URL,
 * lower-cased, where this one has `POST`, upper-case; and an answer's starts `RESPONSE `. So a notice, whose
 * URL a participant subscribes, never verifies as a delivery at a recipient's message webhook, nor a delivery
 * as a notice.
 */
export function noticeStringToSign(method: string, url: string, date: string, hash: string): string {
  return `NOTICE;${stringToSign(method, url, date, hash)}`;
}

/** What an answer's signature binds besides the request and the bytes: its status and the next page it names. */
export interface SignedAnswer {
  status: number;
  /** The X-Continuation-Token sent with it (a 206 replay page); null (or absent) when none is. */
  continuation?: string | null;
}

// ---------------------------------------------------------------------------------------------
// Signing

export class Signer {
  private readonly key: KeyObject;
  private readonly certificateHeader: string;
  readonly certificate: CertificateInfo;

  constructor(privateKeyPem: string, certificatePem: string) {
    this.key = createPrivateKey(privateKeyPem);
    if (this.key.asymmetricKeyType !== 'rsa') {
      throw new Error(`DIP signing needs an RSA key, got ${this.key.asymmetricKeyType ?? 'unknown'}`);
    }
    const cert = new X509Certificate(certificatePem);
    if (!cert.checkPrivateKey(this.key)) {
      throw new Error('Signer: private key does not match the certificate public key');
    }
    this.certificate = infoFromX509(cert);
    this.certificateHeader = Buffer.from(certificatePem, 'utf8').toString('base64');
  }

  /** Produce the four DIP signature headers. The RSA operation runs on the libuv thread pool. */
  sign(method: string, url: string, body: Buffer | string, now: Date = new Date()): Promise<DipSignatureHeaders> {
    return this.signHash(method, url, contentHash(body), now);
  }

  /**
   * The same headers for a body hashed beforehand (base64 SHA-256): a large publication is hashed while
   * read from disk and streamed afterwards, never held in memory.
   */
  signHash(method: string, url: string, hash: string, now: Date = new Date()): Promise<DipSignatureHeaders> {
    const date = now.toISOString();
    return this.signString(stringToSign(method, url, date, hash), date, hash);
  }

  /** The same headers on an answer to a `method` request for `url` (answerStringToSign: never a request's). */
  signAnswer(answer: SignedAnswer, method: string, url: string, body: Buffer | string, now: Date = new Date()): Promise<DipSignatureHeaders> {
    const date = now.toISOString();
    const hash = contentHash(body);
    return this.signString(answerStringToSign(answer, method, url, date, hash), date, hash);
  }

  /** The same headers on an alarm or maintenance notice (noticeStringToSign: never a delivery's). */
  signNotice(method: string, url: string, body: Buffer | string, now: Date = new Date()): Promise<DipSignatureHeaders> {
    const date = now.toISOString();
    const hash = contentHash(body);
    return this.signString(noticeStringToSign(method, url, date, hash), date, hash);
  }

  private signString(text: string, date: string, hash: string): Promise<DipSignatureHeaders> {
    const data = Buffer.from(text, 'utf8');
    return new Promise((resolve, reject) => {
      cryptoSign('sha256', data, this.key, (err, signature) => {
        if (err) {
          reject(err);
          return;
        }
        resolve({
          'x-dip-content-hash': hash,
          'x-dip-signature-date': date,
          'x-dip-signature': signature.toString('base64'),
          'x-dip-signature-certificate': this.certificateHeader,
        });
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Certificates

/** Parse node's subjectAltName string ("DNS:a, IP Address:1.2.3.4, URI:\"quoted,value\""). */
export function parseSubjectAltName(san: string | undefined): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  if (!san) return out;
  let i = 0;
  const n = san.length;
  while (i < n) {
    while (i < n && (san[i] === ' ' || san[i] === ',')) i++;
    if (i >= n) break;
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const type = san.slice(i, colon);
    i = colon + 1;
    let value: string;
    if (san[i] === '"') {
      // JSON-quoted value (node >= 12.22.9/14.18.3/16.13.2 quotes values with special characters).
      let j = i + 1;
      while (j < n && san[j] !== '"') j += san[j] === '\\' ? 2 : 1;
      const quoted = san.slice(i, j + 1);
      try {
        value = JSON.parse(quoted) as string;
      } catch {
        value = quoted.slice(1, -1);
      }
      i = j + 1;
    } else {
      const end = san.indexOf(', ', i);
      const stop = end < 0 ? n : end;
      value = san.slice(i, stop);
      i = stop;
    }
    out.push({ type, value });
  }
  return out;
}

function dnToString(dn: string): string {
  return dn
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .join(', ');
}

function infoFromX509(cert: X509Certificate): CertificateInfo {
  const dipIds: string[] = [];
  for (const { type, value } of parseSubjectAltName(cert.subjectAltName)) {
    if (type === 'URI' && value.toLowerCase().startsWith(DIP_URN_PREFIX)) {
      const id = value.slice(DIP_URN_PREFIX.length);
      if (id && !dipIds.includes(id)) dipIds.push(id);
    }
  }
  return {
    fingerprint256: cert.fingerprint256.replace(/:/g, '').toUpperCase(),
    subject: dnToString(cert.subject),
    issuer: dnToString(cert.issuer),
    serialNumber: cert.serialNumber.toUpperCase(),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    dipIds,
    pem: cert.toString(),
  };
}

/** Parse a PEM (or DER) certificate. Throws on garbage. */
export function certificateInfo(pem: string | Buffer): CertificateInfo {
  return infoFromX509(new X509Certificate(pem));
}

/** Split a PEM bundle into individual certificate PEM blocks. */
export function splitPemBundle(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function withinValidity(cert: X509Certificate, now: Date): boolean {
  const t = now.getTime();
  return Date.parse(cert.validFrom) <= t && t <= Date.parse(cert.validTo);
}

/** id-kp-serverAuth and id-kp-clientAuth (RFC 5280): certificates for TLS. */
const TLS_KEY_PURPOSES = new Set(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);

/**
 * Why a certificate that chains to the environment's CA is still not the DIP's message-signing
 * certificate, or null when nothing says so. That CA also issues participants their certificates (bound
 * to DIP IDs, for mutual TLS and signing) and their webhook receivers' TLS certificates (`dip pki
 * issue-server`), whose keys participants hold: a signature under one of those is a participant's, and a
 * receiver that took it would take "deliveries" from any participant that learnt its URL. The DIP's
 * signing certificate names no participant and is not for TLS (`issueSigningCertificate`).
 */
export function notDipSigner(certPem: string): string | null {
  const cert = new X509Certificate(certPem);
  const { dipIds, subject } = infoFromX509(cert);
  if (dipIds.length > 0) return `signing certificate ${subject} names participant ${dipIds.join(', ')}: a participant's, not the DIP's`;
  // X509Certificate.keyUsage is the extended key usage (undefined when the certificate has none).
  const tls = (cert.keyUsage ?? []).filter((oid) => TLS_KEY_PURPOSES.has(oid));
  if (tls.length > 0) return `signing certificate ${subject} is a TLS certificate (extended key usage ${tls.join(', ')}), not the DIP's signing certificate`;
  return null;
}

/**
 * Why a certificate that signed what came from "the DIP" is not the DIP's, or null when it is: it must
 * chain to a trusted DIP CA, and chaining is not enough, since the CA issues participants certificates too
 * (notDipSigner). What a webhook receiver checks on a call, and a puller on a pull or replay answer.
 */
export function notFromDip(certificate: CertificateInfo, trustedCas: string[]): string | null {
  return verifyChain(certificate.pem, trustedCas) ? notDipSigner(certificate.pem) : `signing certificate ${certificate.subject} does not chain to a trusted DIP CA`;
}

/**
 * True when `certPem` was issued (and signed) by one of `caPems` (each entry may be a PEM bundle),
 * that issuer is a CA, and both certificates are within their validity period at `now`.
 * Only direct issuance is checked: put intermediates you trust in caPems.
 */
export function verifyChain(certPem: string, caPems: string[], now: Date = new Date()): boolean {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return false;
  }
  if (!withinValidity(cert, now)) return false;
  for (const bundle of caPems) {
    const blocks = splitPemBundle(bundle);
    for (const caPem of blocks.length > 0 ? blocks : [bundle]) {
      let ca: X509Certificate;
      try {
        ca = new X509Certificate(caPem);
      } catch {
        continue;
      }
      if (!ca.ca) continue;
      if (!cert.checkIssued(ca)) continue;
      if (!withinValidity(ca, now)) continue;
      try {
        if (cert.verify(ca.publicKey)) return true;
      } catch {
        // wrong key type etc.
      }
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Verification

interface CachedCert {
  publicKey: KeyObject;
  info: CertificateInfo;
  notBeforeMs: number;
  notAfterMs: number;
}
type CacheEntry = CachedCert | { error: string };

let certCacheLimit = 10_000;
const certCache = new Map<string, CacheEntry>();

/** Change the parsed-certificate cache bound (default 10 000 entries). */
export function setCertificateCacheLimit(limit: number): void {
  certCacheLimit = Math.max(1, Math.floor(limit));
  while (certCache.size > certCacheLimit) evictOldest();
}
export function clearCertificateCache(): void {
  certCache.clear();
}
export function certificateCacheSize(): number {
  return certCache.size;
}

function evictOldest(): void {
  const first = certCache.keys().next();
  if (!first.done) certCache.delete(first.value);
}

function parseCertificateHeader(headerValue: string): CacheEntry {
  const hit = certCache.get(headerValue);
  if (hit) {
    // LRU-ish: move to the back of the insertion order.
    certCache.delete(headerValue);
    certCache.set(headerValue, hit);
    return hit;
  }
  let entry: CacheEntry;
  try {
    if (!/^[\w+/=-]+$/.test(headerValue)) throw new Error('header value is not base64');
    const decoded = Buffer.from(headerValue, 'base64');
    if (decoded.length === 0) throw new Error('header value decodes to nothing');
    // Spec: base64 of the PEM text. DER (base64 of the raw certificate) is accepted as well.
    const cert = new X509Certificate(decoded);
    const publicKey = cert.publicKey;
    if (publicKey.asymmetricKeyType !== 'rsa') {
      throw new Error(`certificate key type is ${publicKey.asymmetricKeyType ?? 'unknown'}, expected rsa`);
    }
    const info = infoFromX509(cert);
    // Shared between requests: freeze so one caller cannot corrupt another's view.
    Object.freeze(info.dipIds);
    Object.freeze(info);
    entry = { publicKey, info, notBeforeMs: info.notBefore.getTime(), notAfterMs: info.notAfter.getTime() };
  } catch (e) {
    entry = { error: (e as Error).message || String(e) };
  }
  if (certCache.size >= certCacheLimit) evictOldest();
  certCache.set(headerValue, entry);
  return entry;
}

/**
 * One DIP header's value, or why there is none. `wellFormed` (the date's format) tells a header sent twice
 * from one value holding a comma: see below.
 */
function getHeader(
  headers: Record<string, string | string[] | undefined>,
  name: string,
  wellFormed?: (value: string) => boolean,
): { value?: string; problem?: string } {
  let v = headers[name];
  if (v === undefined) {
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === name) {
        v = headers[k];
        break;
      }
    }
  }
  if (Array.isArray(v)) {
    if (v.length !== 1) return { problem: `header ${name} appears ${v.length} times` };
    v = v[0];
  }
  if (v === undefined) return { problem: `header ${name} is missing` };
  const trimmed = v.trim();
  if (trimmed === '') return { problem: `header ${name} is empty` };
  // node's HTTP parser joins repeated non-standard headers with ", ". No well-formed DIP header value
  // contains a comma (base64, ISO-8601), so a comma means the header was sent twice; unless a part is not
  // well-formed itself (an HTTP-date, `Sat, 05 Dec 2026 12:41:48 GMT`, is one malformed date, whose
  // refusal says so, not that it was sent twice).
  if (trimmed.includes(',') && (wellFormed === undefined || trimmed.split(',').every((part) => wellFormed(part.trim())))) {
    return { problem: `header ${name} appears more than once` };
  }
  return { value: trimmed };
}

/**
 * The content hash the public Postman pre-request script (the reference's client written by others, used
 * against the live DIP) sends for a request without a body: it hashes the text "{}" in place of no bytes.
 * Taken for an empty body only: a body that is there is hashed as it is.
 */
const NO_BODY_AS_POSTMAN_HASHES_IT = contentHash('{}');

// YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM). toISOString() output always matches. T and Z in either case
// (RFC 3339 5.6); the date is verified as the text received, which is what its sender signed.
const ISO_DATE = /^\d{4}-\d{2}-\d{2}t\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:z|[+-]\d{2}:\d{2})$/i;
const isIsoDate = (value: string): boolean => ISO_DATE.test(value);

/** What the verifier expects to have been signed; a header it lacks shows as `<its name>`. */
function expectedString(input: VerifyInput, date: string | undefined, hash: string | undefined): string {
  const d = date ?? `<${DIP_HEADER_SIGNATURE_DATE}>`;
  const h = hash ?? `<${DIP_HEADER_CONTENT_HASH}>`;
  if (input.answer !== undefined) return answerStringToSign(input.answer, input.method, input.url, d, h);
  return input.notice === true ? noticeStringToSign(input.method, input.url, d, h) : stringToSign(input.method, input.url, d, h);
}

/**
 * Verify the DIP signature headers of a request/webhook. Synchronous (~50 µs with a warm cache).
 * Checks, in order: headers present, date format, clock skew, content hash, certificate parse
 * (+ validity at `now`), RSA signature. It does not check trust (see verifyChain) nor that the
 * certificate belongs to the sender (compare CertificateInfo.dipIds / fingerprint256).
 */
export function verifyDipSignature(input: VerifyInput): VerifyResult {
  const hashH = getHeader(input.headers, DIP_HEADER_CONTENT_HASH);
  const dateH = getHeader(input.headers, DIP_HEADER_SIGNATURE_DATE, isIsoDate);
  const sigH = getHeader(input.headers, DIP_HEADER_SIGNATURE);
  const certH = getHeader(input.headers, DIP_HEADER_SIGNATURE_CERTIFICATE);
  let expected = expectedString(input, dateH.value, hashH.value);
  let dateSkewMs: number | undefined;
  const fail = (reason: VerifyFailureReason, detail: string): VerifyResult => ({ ok: false, reason, detail, stringToSign: expected, ...(dateSkewMs === undefined ? {} : { dateSkewMs }) });
  const problems = [hashH, dateH, sigH, certH].filter((h) => h.problem).map((h) => h.problem);
  if (problems.length > 0) return fail('missing-header', problems.join('; '));
  const hashHeader = hashH.value as string;
  const date = dateH.value as string;
  const signatureB64 = sigH.value as string;
  const certHeader = certH.value as string;

  if (!isIsoDate(date)) {
    return fail('bad-date', `${DIP_HEADER_SIGNATURE_DATE} '${truncate(date)}' is not in the required format: an ISO-8601 UTC timestamp with milliseconds, like 2025-06-27T14:29:09.061Z`);
  }
  // Date.parse reads the lower-case t and z of RFC 3339 too (ECMA-262's format names them in upper case only).
  const signedAt = Date.parse(date.toUpperCase());
  if (Number.isNaN(signedAt)) {
    return fail('bad-date', `${DIP_HEADER_SIGNATURE_DATE} '${truncate(date)}' is not a valid date`);
  }
  const skew = signedAt - input.now.getTime();
  dateSkewMs = skew;
  if (Math.abs(skew) > input.maxSkewMs) {
    return fail(
      'clock-skew',
      `${DIP_HEADER_SIGNATURE_DATE} ${date} is ${(Math.abs(skew) / 1000).toFixed(3)} s ${skew > 0 ? 'ahead of' : 'behind'} ` +
        `server time ${input.now.toISOString()}; limit is ${(input.maxSkewMs / 1000).toFixed(3)} s`,
    );
  }

  const actualHash = input.body === null ? hashHeader : contentHash(input.body);
  if (input.body !== null && actualHash !== hashHeader && !(input.body.length === 0 && hashHeader === NO_BODY_AS_POSTMAN_HASHES_IT)) {
    // What a signer of this body signs: the string with the body's own hash.
    expected = expectedString(input, date, actualHash);
    return fail(
      'bad-hash',
      `${DIP_HEADER_CONTENT_HASH} does not match the body (${input.body.length} bytes): expected ${actualHash}, got ${truncate(hashHeader)}`,
    );
  }

  const cert = parseCertificateHeader(certHeader);
  if ('error' in cert) {
    return fail('bad-certificate', `${DIP_HEADER_SIGNATURE_CERTIFICATE} is not a base64-encoded X.509 certificate: ${cert.error}`);
  }
  if (input.checkCertificateValidity !== false) {
    const t = input.now.getTime();
    if (t < cert.notBeforeMs) {
      return fail('bad-certificate', `certificate ${cert.info.subject} is not valid before ${cert.info.notBefore.toISOString()}`);
    }
    if (t > cert.notAfterMs) {
      return fail('bad-certificate', `certificate ${cert.info.subject} expired at ${cert.info.notAfter.toISOString()}`);
    }
  }

  if (!/^[A-Z0-9+/]+={0,2}$/i.test(signatureB64)) {
    return fail('bad-signature', `${DIP_HEADER_SIGNATURE} is not base64`);
  }
  const signature = Buffer.from(signatureB64, 'base64');
  const data = Buffer.from(expected, 'utf8');
  let valid: boolean;
  try {
    valid = cryptoVerify('sha256', data, cert.publicKey, signature);
  } catch (e) {
    return fail('bad-signature', `signature verification error: ${(e as Error).message}`);
  }
  for (const url of valid || input.answer !== undefined ? [] : (input.sameUrls ?? [])) {
    const same = expectedString({ ...input, url }, date, hashHeader);
    if (cryptoVerify('sha256', Buffer.from(same, 'utf8'), cert.publicKey, signature)) {
      expected = same;
      valid = true;
      break;
    }
  }
  // An answer's and a notice's strings are the DIP's own: the diagnosis of a participant's signing mistakes does not apply.
  if (!valid && input.answer !== undefined) return fail('bad-signature', `${DIP_HEADER_SIGNATURE} does not verify over the string shown (another status, method, URL, continuation token or key)`);
  if (!valid && input.notice === true) return fail('bad-signature', `${DIP_HEADER_SIGNATURE} does not verify over the notice's string shown (another URL or key, or a call that is not a notice)`);
  if (!valid) {
    const found = diagnose(signature, cert.publicKey, input, date, hashHeader);
    return fail(found.reason, found.detail);
  }
  return { ok: true, certificate: cert.info, stringToSign: expected, signature: signature.toString('base64'), dateSkewMs: skew };
}

// ---------------------------------------------------------------------------------------------
// The signature doctor: why a signature that does not verify was refused

/** DER prefix of an RSASSA-PKCS1-v1_5 DigestInfo for SHA-256 (RFC 8017, 9.2 note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * The SHA-256 digest an RSASSA-PKCS1-v1_5 signature carries, recovered with the public key; null when
 * the signature was not made with the matching private key (or not with that scheme and hash).
 */
function signedDigest(signature: Buffer, key: KeyObject): Buffer | null {
  try {
    const info = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
    if (info.length !== SHA256_DIGEST_INFO.length + 32 || !info.subarray(0, SHA256_DIGEST_INFO.length).equals(SHA256_DIGEST_INFO)) return null;
    return info.subarray(SHA256_DIGEST_INFO.length);
  } catch {
    return null;
  }
}

interface Candidate {
  text: string;
  reason: VerifyFailureReason;
  why: string;
}

/** Strings a caller plausibly signed instead: another method, the URL in another form, the hash in hex. */
function candidates(input: VerifyInput, date: string, hash: string): Candidate[] {
  const method = input.method.toUpperCase();
  const out: Candidate[] = [];
  const add = (m: string, url: string, h: string, reason: VerifyFailureReason, why: string) => out.push({ text: `${m};${url};${date};${h}`, reason, why });
  const lower = input.url.toLowerCase();
  for (const m of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
    if (m !== method) add(m, lower, hash, 'method-or-url', `it was signed for method ${m}, but the request is a ${method}`);
  }
  add(method.toLowerCase(), lower, hash, 'method-or-url', 'the method was signed in lower case: sign it upper-case');
  if (input.url !== lower) add(method, input.url, hash, 'method-or-url', 'the URL was signed as is: sign it lower-cased');
  for (const u of urlVariants(input.url)) add(method, u.url.toLowerCase(), hash, 'method-or-url', u.why);
  for (const other of input.otherUrls ?? []) {
    add(method, other.toLowerCase(), hash, 'method-or-url', `it was signed for ${other}, but the DIP is called at ${input.url} (its public URL)`);
  }
  const hexHash = input.body === null ? Buffer.from(hash, 'base64').toString('hex') : createHash('sha256').update(input.body).digest('hex');
  add(method, lower, hexHash, 'bad-signature', `the content hash was signed in hex: sign the base64 value of ${DIP_HEADER_CONTENT_HASH}`);
  return out;
}

function urlVariants(raw: string): Array<{ url: string; why: string }> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return [];
  }
  const out: Array<{ url: string; why: string }> = [];
  const base = `${u.protocol}//${u.host}`;
  const target = `${u.pathname}${u.search}`;
  const other = u.protocol === 'https:' ? 'http:' : 'https:';
  out.push({ url: `${other}//${u.host}${target}`, why: `the URL was signed with ${other}// but called with ${u.protocol}//` });
  const defaultPort = u.protocol === 'https:' ? '443' : '80';
  if (u.port) out.push({ url: `${u.protocol}//${u.hostname}${target}`, why: `the URL was signed without its port :${u.port}` });
  else out.push({ url: `${u.protocol}//${u.hostname}:${defaultPort}${target}`, why: `the URL was signed with port :${defaultPort}, which the request's URL does not name` });
  if (u.search) out.push({ url: `${base}${u.pathname}`, why: `the URL was signed without its query string ${u.search}` });
  const slash = u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : `${u.pathname}/`;
  out.push({ url: `${base}${slash}${u.search}`, why: `the URL was signed ${u.pathname.endsWith('/') ? 'without' : 'with'} a trailing slash` });
  out.push({ url: target, why: 'only the path was signed: sign the full URL, with scheme, host and port' });
  return out;
}

/**
 * Why a signature does not verify over what the DIP expects. RSA lets the verifier recover the digest
 * that was signed, so the doctor can tell "another key" from "another string", and for the usual
 * mistakes (method, URL form, hex hash) name the string that was signed. Runs only on failure.
 */
function diagnose(signature: Buffer, key: KeyObject, input: VerifyInput, date: string, hash: string): { reason: VerifyFailureReason; detail: string } {
  const digest = signedDigest(signature, key);
  if (!digest) {
    return {
      reason: 'bad-signature',
      detail:
        `${DIP_HEADER_SIGNATURE} was not made with the private key of the certificate in ${DIP_HEADER_SIGNATURE_CERTIFICATE}, ` +
        'or not with RSASSA-PKCS1-v1_5 and SHA-256: sign with the key of the certificate you send',
    };
  }
  for (const c of candidates(input, date, hash)) {
    if (createHash('sha256').update(c.text, 'utf8').digest().equals(digest)) {
      return { reason: c.reason, detail: `${c.why}; the signature is over '${truncate(c.text, 200)}'` };
    }
  }
  return {
    reason: 'bad-signature',
    detail:
      `${DIP_HEADER_SIGNATURE} was made with the certificate's key, but over another string than the DIP's: sign ` +
      `METHOD;full URL lower-cased;${DIP_HEADER_SIGNATURE_DATE};${DIP_HEADER_CONTENT_HASH}, each exactly as sent`,
  };
}

/** Names of the checks, as a participant's developer reads them in an answer's help. */
const CHECK_NAMES: Record<VerifyFailureReason, string> = {
  'missing-header': 'signature headers',
  'bad-date': 'signature date',
  'clock-skew': 'clock skew',
  'bad-hash': 'content hash',
  'bad-certificate': 'signing certificate',
  'method-or-url': 'method or URL',
  'bad-signature': 'signature',
};

/** The published help text is at most 500 characters; the string to sign is kept whole within it. */
const HELP_MAX = 500;

/**
 * A refusal's help: which check failed, why, and the exact string the DIP verifies, for the caller to
 * compare with what it signed. `check` is a VerifyFailureReason or a check of its own (a revoked or
 * unregistered certificate, a replay).
 */
export function signatureHelp(check: string, detail: string, stringToSign: string | null): string {
  const name = CHECK_NAMES[check as VerifyFailureReason] ?? check;
  const tail = stringToSign === null ? '' : ` | the DIP verifies: ${stringToSign}`;
  const head = `message signature refused (${name}): `;
  const room = HELP_MAX - head.length - tail.length;
  const shown = detail.length <= room ? detail : `${detail.slice(0, Math.max(0, room - 1))}…`;
  return `${head}${shown}${tail}`.slice(0, HELP_MAX);
}

function truncate(s: string, max = 120): string {
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}
