import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Where the DIP may send webhook calls (server-side request forgery): a participant registers the
 * callback URL, so without a check it could point the DIP at the DIP's own network (the cloud metadata
 * service on 169.254.169.254, the operator API on loopback, databases on private ranges).
 *
 * Outside DEV every destination is checked twice: at registration (pubconfig, status config), so the
 * participant gets a clear 400, and again on every new connection after name resolution, so a name that
 * resolves to a public address at registration and to an internal one later (DNS rebinding) is still
 * refused. The operator's allow-list (`webhookAllowList`) lets genuine private links through.
 */

type Family = 'ipv4' | 'ipv6';

/** One refused range, named as the participant is told. */
interface Rule {
  cidr: string;
  why: string;
}

/** IANA's special-purpose registries (RFC 6890 and successors): nothing a participant's webhook lives on. */
const RULES: Record<Family, readonly Rule[]> = {
  ipv4: [
    { cidr: '0.0.0.0/8', why: '"this network" address (0.0.0.0/8, RFC 1122)' },
    { cidr: '10.0.0.0/8', why: 'private address (10.0.0.0/8, RFC 1918)' },
    // Before its range: the clouds' metadata and platform addresses are named for what they are. Every
    // cloud's instance metadata service on 169.254.169.254 (AWS, Azure, GCP, Oracle, OpenStack, and
    // Tencent's 169.254.0.23) is link-local, below; these are not, or sit in a wider range.
    { cidr: '100.100.100.200/32', why: 'metadata service address of Alibaba Cloud (100.100.100.200, in the carrier-grade NAT range 100.64.0.0/10)' },
    { cidr: '100.64.0.0/10', why: 'carrier-grade NAT address (100.64.0.0/10, RFC 6598)' },
    // A public address by its range, but Azure's virtual platform on every Azure network: its WireServer
    // (the VM agent's configuration and certificates), DNS and load balancer probes. A call to it from a
    // VM is a call into the platform, never a participant's webhook.
    { cidr: '168.63.129.16/32', why: 'platform address of Azure (168.63.129.16: its WireServer, DNS and health probes, reachable from every Azure VM)' },
    { cidr: '127.0.0.0/8', why: 'loopback address (127.0.0.0/8)' },
    { cidr: '169.254.0.0/16', why: 'link-local address (169.254.0.0/16, which holds cloud metadata services such as 169.254.169.254)' },
    { cidr: '172.16.0.0/12', why: 'private address (172.16.0.0/12, RFC 1918)' },
    { cidr: '192.0.0.0/24', why: 'IETF protocol assignment (192.0.0.0/24)' },
    { cidr: '192.0.2.0/24', why: 'documentation address (192.0.2.0/24)' },
    { cidr: '192.88.99.0/24', why: '6to4 relay anycast address (192.88.99.0/24)' },
    { cidr: '192.168.0.0/16', why: 'private address (192.168.0.0/16, RFC 1918)' },
    { cidr: '198.18.0.0/15', why: 'benchmarking address (198.18.0.0/15)' },
    { cidr: '198.51.100.0/24', why: 'documentation address (198.51.100.0/24)' },
    { cidr: '203.0.113.0/24', why: 'documentation address (203.0.113.0/24)' },
    { cidr: '224.0.0.0/4', why: 'multicast address (224.0.0.0/4)' },
    { cidr: '240.0.0.0/4', why: 'reserved or broadcast address (240.0.0.0/4)' },
  ],
  ipv6: [
    { cidr: '::/128', why: 'unspecified address (::)' },
    { cidr: '::1/128', why: 'loopback address (::1)' },
    // After :: and ::1, which keep their own names. Deprecated (RFC 4291 2.5.5.1) and routed nowhere
    // public; `[::127.0.0.1]` is the form that reads as loopback.
    { cidr: '::/96', why: 'deprecated IPv4-compatible IPv6 address (::/96, RFC 4291)' },
    { cidr: '64:ff9b:1::/48', why: 'local-use NAT64 address (64:ff9b:1::/48)' },
    { cidr: '100::/64', why: 'discard-only address (100::/64)' },
    { cidr: '2001::/32', why: 'Teredo tunnel address (2001::/32)' },
    { cidr: '2001:db8::/32', why: 'documentation address (2001:db8::/32)' },
    // Before its range (AWS's IPv6 endpoints of Nitro instances: metadata, and fd00:ec2::123 its time service, the latter unique-local as any).
    { cidr: 'fd00:ec2::254/128', why: 'instance metadata service address of AWS over IPv6 (fd00:ec2::254, in the unique-local range fc00::/7)' },
    { cidr: 'fc00::/7', why: 'unique-local address (fc00::/7)' },
    { cidr: 'fe80::/10', why: 'link-local address (fe80::/10)' },
    { cidr: 'fec0::/10', why: 'site-local address (fec0::/10)' },
    { cidr: 'ff00::/8', why: 'multicast address (ff00::/8)' },
  ],
};

/** IPv6 forms that carry an IPv4 address: judged by the IPv4 address inside. */
const EMBEDDING: ReadonlyArray<{ cidr: string; name: string; v4At: number }> = [
  { cidr: '::ffff:0:0/96', name: 'IPv4-mapped', v4At: 12 },
  // SIIT (RFC 2765): ::ffff:0:a9fe:a9fe is 169.254.169.254 to a stack that translates it.
  { cidr: '::ffff:0:0:0/96', name: 'IPv4-translated', v4At: 12 },
  { cidr: '64:ff9b::/96', name: 'NAT64', v4At: 12 },
  { cidr: '2002::/16', name: '6to4', v4At: 2 },
];

/** An IP address or CIDR range (IPv4 or IPv6) as BlockList takes it; null when it is neither. */
export function parseCidr(entry: string): { address: string; prefix: number; family: Family } | null {
  const [address = '', prefixText] = entry.split('/');
  const v = isIP(address);
  if (v === 0) return null;
  const family: Family = v === 4 ? 'ipv4' : 'ipv6';
  const max = v === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (prefixText !== undefined && !/^\d+$/.test(prefixText))) return null;
  return { address, prefix, family };
}

function listOf(cidr: string): BlockList {
  const c = parseCidr(cidr);
  if (!c) throw new Error(`not a CIDR range: ${cidr}`);
  const list = new BlockList();
  list.addSubnet(c.address, c.prefix, c.family);
  return list;
}

const COMPILED: Record<Family, Array<{ list: BlockList; why: string }>> = {
  ipv4: RULES.ipv4.map((r) => ({ list: listOf(r.cidr), why: r.why })),
  ipv6: RULES.ipv6.map((r) => ({ list: listOf(r.cidr), why: r.why })),
};
const EMBEDDINGS = EMBEDDING.map((e) => ({ ...e, list: listOf(e.cidr) }));

/** The 16 bytes of an IPv6 address (any textual form Node accepts). */
function ipv6Bytes(address: string): Buffer {
  let text = address.split('%')[0] ?? address;
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hextets.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad?.[1]) {
    const [a = 0, b = 0, c = 0, d = 0] = quad[1].split('.').map(Number);
    text = `${text.slice(0, -quad[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const hextets = (s: string) => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const h = hextets(head);
  const t = tail === undefined ? [] : hextets(tail);
  const all = [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((v, i) => out.writeUInt16BE(v & 0xffff, i * 2));
  return out;
}

/**
 * Why the DIP may not call this IP address (naming the range and its rule), or null when it is an
 * ordinary public address. Pure: no allow-list, no environment.
 */
export function internalAddressReason(address: string): string | null {
  const v = isIP(address);
  if (v === 0) return `${address} is not an IP address`;
  if (v === 4) return COMPILED.ipv4.find((r) => r.list.check(address, 'ipv4'))?.why ?? null;
  for (const e of EMBEDDINGS) {
    if (!e.list.check(address, 'ipv6')) continue;
    const b = ipv6Bytes(address);
    const v4 = `${b[e.v4At]}.${b[e.v4At + 1]}.${b[e.v4At + 2]}.${b[e.v4At + 3]}`;
    const inner = internalAddressReason(v4);
    return inner === null ? null : `${e.name} IPv6 form of ${v4}, a ${inner}`;
  }
  return COMPILED.ipv6.find((r) => r.list.check(address, 'ipv6'))?.why ?? null;
}

export interface WebhookDestinationOptions {
  /** Refuse internal destinations: every environment but DEV (where tests and walk-throughs use 127.0.0.1). */
  enforce: boolean;
  /**
   * The operator's exceptions (`webhookAllowList`): IP addresses, CIDR ranges (IPv4 or IPv6), and host
   * names (exact, or `*.example.net` for every name under example.net). A listed name is trusted
   * whatever it resolves to.
   */
  allowList?: readonly string[];
  /** Name resolution, dns.lookup by default (tests inject their own). */
  lookup?: LookupFunction;
  /** Registration does not wait longer than this for a name to resolve (the connection checks again). */
  registrationLookupTimeoutMs?: number;
}

/** A connection the policy refused: the delivery attempt records the message; the call is retried. */
export class DestinationRefusedError extends Error {
  readonly code = 'EDESTINATIONREFUSED';
}

const REMEDY = 'webhook destinations on internal networks are refused outside DEV; an operator can allow a private link with webhookAllowList';

/** Checks webhook destinations: at registration (`checkUrl`) and at every connection (`lookup`, `checkHost`). */
export class WebhookDestinations {
  private readonly enforce: boolean;
  private readonly allowed = new BlockList();
  private readonly allowedNames = new Set<string>();
  private readonly allowedSuffixes: string[] = [];
  private readonly baseLookup: LookupFunction;
  private readonly timeoutMs: number;

  constructor(opts: WebhookDestinationOptions) {
    this.enforce = opts.enforce;
    this.baseLookup = opts.lookup ?? dnsLookup;
    this.timeoutMs = opts.registrationLookupTimeoutMs ?? 3000;
    for (const raw of opts.allowList ?? []) {
      const entry = raw.trim();
      const cidr = parseCidr(entry);
      if (cidr) this.allowed.addSubnet(cidr.address, cidr.prefix, cidr.family);
      else if (entry.includes('/')) throw new Error(`webhookAllowList: '${raw}' is neither an IP address, a CIDR range nor a host name`);
      else if (entry.startsWith('*.')) this.allowedSuffixes.push(normaliseName(entry.slice(1)));
      else this.allowedNames.add(normaliseName(entry));
    }
  }

  /** The host name is on the allow-list (whatever it resolves to). */
  private nameAllowed(hostname: string): boolean {
    const name = normaliseName(hostname);
    return this.allowedNames.has(name) || this.allowedSuffixes.some((s) => name.endsWith(s));
  }

  /** Why this resolved address may not be called (naming the rule), or null. */
  refusal(address: string): string | null {
    if (!this.enforce) return null;
    const v = isIP(address);
    if (v !== 0 && this.allowed.check(address, v === 4 ? 'ipv4' : 'ipv6')) return null;
    return internalAddressReason(address);
  }

  /** For a URL's host before connecting: an IP literal is judged as it is (no lookup happens for it). */
  checkHost(hostname: string): string | null {
    if (!this.enforce) return null;
    const host = unbracket(hostname);
    if (isIP(host) === 0 || this.nameAllowed(host)) return null;
    const why = this.refusal(host);
    return why === null ? null : `${host} is a ${why}: ${REMEDY}`;
  }

  /**
   * At registration: the URL's host as an IP literal, or the addresses its name resolves to now. A name
   * that does not resolve (yet) is accepted: every connection is checked again after resolution.
   */
  async checkUrl(url: string): Promise<string | null> {
    if (!this.enforce) return null;
    let host: string;
    try {
      host = unbracket(new URL(url).hostname);
    } catch {
      return `${url} is not a URL`;
    }
    if (this.nameAllowed(host)) return null;
    if (isIP(host) !== 0) return this.checkHost(host);
    const addresses = await this.resolveAll(host);
    for (const a of addresses) {
      const why = this.refusal(a.address);
      if (why !== null) return `${host} resolves to ${a.address}, a ${why}: ${REMEDY}`;
    }
    return null;
  }

  private resolveAll(host: string): Promise<LookupAddress[]> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve([]), this.timeoutMs);
      timer.unref();
      this.baseLookup(host, { all: true }, (err, addresses) => {
        clearTimeout(timer);
        resolve(err || !Array.isArray(addresses) ? [] : addresses);
      });
    });
  }

  /**
   * A `lookup` for net.connect / tls.connect: resolves as usual, then refuses the connection when any
   * answer is internal, so a name rebound to an internal address after registration never reaches it.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    if (!this.enforce || this.nameAllowed(hostname)) {
      this.baseLookup(hostname, options, callback);
      return;
    }
    const opts: LookupOptions = typeof options === 'object' && options !== null ? options : {};
    this.baseLookup(hostname, { ...opts, all: true }, (err, answer) => {
      if (err) return callback(err, '', 0);
      const addresses = Array.isArray(answer) ? answer : [{ address: String(answer), family: isIP(String(answer)) }];
      for (const a of addresses) {
        const why = this.refusal(a.address);
        if (why !== null) return callback(new DestinationRefusedError(`${hostname} resolved to ${a.address}, a ${why}: ${REMEDY}`), '', 0);
      }
      if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} did not resolve`), { code: 'ENOTFOUND' }), '', 0);
      if (opts.all) return callback(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}

function normaliseName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}
