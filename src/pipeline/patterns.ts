import type { SecurityPattern } from '../domain/channel.js';
import { jsonBodyExcess, type JsonCounts } from '../security/json-depth.js';
import { alteredNumberHelp, firstAlteredNumber, hasAlteredNumber } from '../security/json-numbers.js';
import { decryptWithAny, encryptTo, type DecryptionKey, type EncryptionTarget } from '../security/payload-encryption.js';

/**
 * Security patterns (spec 5.2.2), chosen per channel:
 *   1  signed (the default, as on the live DIP; a configured 0, "no security action", runs as 1: see
 *      `patternInForce` in channels.ts);
 *   2  the CustomBlock arrives encrypted to the DIP, which decrypts, validates, archives under its own
 *      at-rest encryption, and re-encrypts it for each recipient;
 *   3  the sender supplies one copy of the CustomBlock per recipient, each encrypted to that recipient;
 *      the DIP routes on the CommonBlock and never reads the payload.
 * On the wire (an OpenDIP extension in the published style): pattern 2 items carry
 * `payload.EncryptedCustomBlock` (a JWE) instead of `CustomBlock`; pattern 3 items carry
 * `payload.EncryptedCustomBlocks` ({ recipient DIP ID: JWE }). Recipients get `EncryptedCustomBlock`.
 */
export type { SecurityPattern };

export const ENCRYPTED_BLOCK = 'EncryptedCustomBlock';
export const ENCRYPTED_BLOCKS = 'EncryptedCustomBlocks';

type Json = Record<string, unknown>;

function field(o: unknown, name: string): { key: string; value: unknown } | undefined {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  const lower = name.toLowerCase();
  const key = Object.keys(o).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : { key, value: (o as Json)[key] };
}

export type Prepared =
  | { ok: true; item: unknown; copies: Record<string, string> | null }
  | { ok: false; help: string };

/** Pattern 2: the item with its CustomBlock decrypted, ready for ordinary validation. */
export async function openPattern2(item: unknown, dipKeys: readonly DecryptionKey[], limits: { maxDepth: number; counts: JsonCounts }): Promise<Prepared> {
  const payload = field(item, 'payload');
  const sealed = field(payload?.value, ENCRYPTED_BLOCK);
  if (!payload || typeof sealed?.value !== 'string') {
    return { ok: false, help: `payload.${ENCRYPTED_BLOCK} is required on this channel (security pattern 2): the CustomBlock as a JWE (${'RSA-OAEP-256/A256GCM'}) to the DIP's encryption certificate` };
  }
  if (field(payload.value, 'CustomBlock')) return { ok: false, help: `payload.CustomBlock must not travel in clear on this channel (security pattern 2)` };
  let customBlock: unknown;
  let text: string;
  try {
    text = await decryptWithAny(dipKeys, sealed.value);
  } catch (e) {
    return { ok: false, help: `payload.${ENCRYPTED_BLOCK} could not be decrypted with the DIP's encryption key: ${(e as Error).message}` };
  }
  // Anyone can encrypt to the DIP's public key: the block is sender input the body scan never saw, held to
  // the same caps before it is parsed (the block's own depth: it sits below the item and its payload).
  const excess = jsonBodyExcess(Buffer.from(text, 'utf8'), limits.maxDepth - 2, limits.counts);
  if (excess !== null) return { ok: false, help: `payload.${ENCRYPTED_BLOCK}, decrypted: ${excess}` };
  try {
    customBlock = JSON.parse(text);
  } catch (e) {
    return { ok: false, help: `payload.${ENCRYPTED_BLOCK} could not be decrypted with the DIP's encryption key: ${(e as Error).message}` };
  }
  // The decrypted block is parsed here, out of the body scan's sight, and re-encrypted from that parse.
  const altered = hasAlteredNumber(Buffer.from(text, 'utf8')) ? firstAlteredNumber(text) : null;
  if (altered) return { ok: false, help: alteredNumberHelp(altered, 'payload.CustomBlock', `decrypted from payload.${ENCRYPTED_BLOCK}`) };
  const { [sealed.key]: _sealed, ...rest } = payload.value as Json;
  return { ok: true, item: { ...(item as Json), [payload.key]: { ...rest, CustomBlock: customBlock } }, copies: null };
}

const BASE64URL = /^[\w-]*$/;

/**
 * Why a string is not a JWE in compact serialisation (RFC 7516 7.1), or null: five base64url parts, the
 * first a JSON object naming `alg` and `enc`. Only its shape: the DIP holds no key that opens a pattern 3
 * copy, so what the recipient would fail to even parse is refused at submission, not delivered.
 */
function notCompactJwe(jwe: string): string | null {
  const parts = jwe.split('.');
  if (parts.length !== 5) return `it has ${parts.length} dot-separated parts, not 5`;
  const bad = parts.findIndex((p) => !BASE64URL.test(p));
  if (bad !== -1) return `part ${bad + 1} is not base64url`;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as unknown;
  } catch {
    header = undefined;
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return 'its protected header is not base64url-encoded JSON';
  for (const name of ['alg', 'enc']) {
    if (typeof (header as Json)[name] !== 'string') return `its protected header has no "${name}"`;
  }
  // The content encryption algorithms of RFC 7518 5.1 (AES-GCM, AES-CBC-HMAC) all have an IV and a tag.
  if (parts[2] === '' || parts[4] === '') return 'its initialisation vector or authentication tag is empty';
  return null;
}

const COPIES_SHAPE = '{ "<recipient DIP ID>": "<JWE to that recipient>" }';

/** What a JSON value is, as a refusal names it (`not an array`). */
function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Pattern 3: the item without its per-recipient copies (validated without a CustomBlock), and the copies. */
export function splitPattern3(item: unknown, channelId: string): Prepared {
  const payload = field(item, 'payload');
  const copies = field(payload?.value, ENCRYPTED_BLOCKS);
  const value = copies?.value;
  if (!payload || typeof value !== 'object' || value === null || Array.isArray(value)) {
    // Each case named: a developer sent a pattern 2 body, or the copies in another shape ([] read as "required").
    if (copies) return { ok: false, help: `payload.${copies.key} must be an object holding one copy per recipient, ${COPIES_SHAPE}, not ${jsonKind(value)} (${channelId} is set to security pattern 3)` };
    if (field(payload?.value, ENCRYPTED_BLOCK)) return { ok: false, help: `payload.${ENCRYPTED_BLOCK} (one JWE to the DIP) is security pattern 2's; ${channelId} is set to security pattern 3: send payload.${ENCRYPTED_BLOCKS} instead, ${COPIES_SHAPE}, each copy encrypted to its recipient's certificate` };
    return { ok: false, help: `payload.${ENCRYPTED_BLOCKS} is required on this channel (security pattern 3): ${COPIES_SHAPE}` };
  }
  if (field(payload.value, 'CustomBlock')) return { ok: false, help: `payload.CustomBlock must not travel in clear on this channel (security pattern 3)` };
  // The keys are the sender's: with a null prototype a "__proto__" key is kept as data (and refused
  // later as a copy for nobody) instead of reaching the prototype setter and vanishing.
  const out = Object.create(null) as Record<string, string>;
  for (const [id, jwe] of Object.entries(value)) {
    const notJwe = (why: string): Prepared => ({ ok: false, help: `payload.${ENCRYPTED_BLOCKS}.${id} is not a JWE in compact serialisation: ${why}` });
    if (typeof jwe !== 'string') return notJwe('it is not a string');
    const wrong = notCompactJwe(jwe);
    if (wrong !== null) return notJwe(wrong);
    // eslint-disable-next-line local/no-dynamic-key-write -- out has a null prototype (above)
    out[id] = jwe;
  }
  const { [copies!.key]: _copies, ...rest } = payload.value as Json;
  return { ok: true, item: { ...(item as Json), [payload.key]: rest }, copies: out };
}

/**
 * A copy that cannot be made for its recipient at all (a pattern 3 message holding no copy for it, a
 * pattern 2 recipient with no certificate that can be encrypted to): no retry makes it, so it is set aside
 * as a dead letter with this reason, and its sender told (QueueWorker).
 */
export class CopyUnmakeable extends Error {}

/**
 * What a stored outbound copy shows of the pattern it was accepted under: 3 when it holds the sender's
 * per-recipient copies (ingest keeps them as `payload.EncryptedCustomBlocks`), null when it holds a
 * CustomBlock the DIP can read (pattern 1 or 2: the stored row does not say which).
 */
export function storedPattern(outbound: string): 3 | null {
  const payload = (JSON.parse(outbound) as { payload?: unknown }).payload;
  return typeof payload === 'object' && payload !== null && ENCRYPTED_BLOCKS in payload ? 3 : null;
}

/**
 * What a recipient receives on an encrypted channel: the CommonBlock, and its own encrypted CustomBlock.
 * Throws CopyUnmakeable when there is none to give it.
 */
export async function encryptedCopy(outbound: string, pattern: 2 | 3, recipientDipId: string, recipient: EncryptionTarget | undefined): Promise<string> {
  const message = JSON.parse(outbound) as { payload: Json };
  const { CustomBlock, [ENCRYPTED_BLOCKS]: copies, ...rest } = message.payload;
  let sealed: string;
  if (pattern === 3) {
    const mine = typeof copies === 'object' && copies !== null && Object.hasOwn(copies, recipientDipId) ? (copies as Record<string, unknown>)[recipientDipId] : undefined;
    if (typeof mine !== 'string') throw new CopyUnmakeable(`the message was accepted under security pattern 3 and its sender supplied no copy for ${recipientDipId} (payload.${ENCRYPTED_BLOCKS})`);
    sealed = mine;
  } else {
    if (CustomBlock === undefined) throw new CopyUnmakeable(`the message was accepted under security pattern 2 but the stored copy holds no CustomBlock to encrypt for ${recipientDipId}`);
    if (!recipient) throw new CopyUnmakeable(`${recipientDipId} has no certificate that can be encrypted to (security pattern 2)`);
    sealed = await encryptTo(recipient, JSON.stringify(CustomBlock));
  }
  return JSON.stringify({ ...message, payload: { ...rest, [ENCRYPTED_BLOCK]: sealed } });
}
