import { BlockList, isIP } from 'node:net';
import { parseCidr } from './webhook-destinations.js';

/**
 * The client's address as one host is known by: an IPv4 client of a dual-stack listener arrives as the
 * IPv4-mapped IPv6 address (::ffff:192.0.2.7), which is the same host as 192.0.2.7, and is named so.
 */
export function clientAddress(socket: { remoteAddress?: string | undefined }): string {
  const address = socket.remoteAddress ?? '';
  return /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)?.[1] ?? address;
}

/**
 * Whether a client address is in a list of IP addresses and CIDR ranges (IPv4 or IPv6; an IPv4-mapped
 * client judged as its IPv4 address). Null for an empty list: nothing is restricted. An entry that is
 * neither is refused, naming `setting`.
 */
export function addressList(entries: readonly string[], setting: string): ((socket: { remoteAddress?: string | undefined }) => boolean) | null {
  if (entries.length === 0) return null;
  const list = new BlockList();
  for (const raw of entries) {
    const range = parseCidr(raw.trim());
    if (!range) throw new Error(`configuration: ${setting}: '${raw}' is neither an IP address nor a CIDR range`);
    list.addSubnet(range.address, range.prefix, range.family);
  }
  return (socket) => {
    const address = clientAddress(socket);
    const v = isIP(address);
    return v !== 0 && list.check(address, v === 4 ? 'ipv4' : 'ipv6');
  };
}
