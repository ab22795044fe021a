/**
 * API version control on the participant API (spec 5.13.4 "Supports API version control"). The wire
 * contract is the published DIP API 2.1.0 and paths carry no version, so an existing adapter, which names
 * none, is answered as it always was. Every answer says the version it was served under (the header
 * below), and a caller that names the version it was written for is told plainly when it is not served.
 * The policy (README "API versions"): within a major version changes only add; a change that breaks comes
 * with a new major version, served beside the old one for a deprecation period announced as maintenance is.
 */
export const DIP_API_VERSION = '2.1.0';
/** Sent on every answer of the participant listener; read, when given, on requests. */
export const API_VERSION_HEADER = 'x-dip-api-version';
/**
 * What every HTTP exchange of the DIP with a participant carries, from this one constant: each answer of
 * the participant and anonymous listeners (those written on the socket, before Fastify, included) and each
 * call it makes (message webhooks, alarm and maintenance notices).
 */
export const API_VERSION_HEADERS: Readonly<Record<string, string>> = Object.freeze({ [API_VERSION_HEADER]: DIP_API_VERSION });

const SERVED_MAJOR = Number(DIP_API_VERSION.split('.')[0]);
const VERSION = /^(\d{1,3})(?:\.\d{1,3}(?:\.\d{1,3})?)?$/;

/**
 * Why a request naming `given` (the header's value) is not served, or null when it is: no header, or any
 * version of the served major one (2, 2.0, 2.1, 2.1.0: answered as 2.1.0, which only added to earlier 2.x).
 * A header sent twice reaches here joined with ', ' (Node's way, RFC 9110 5.3): served when every version
 * in the list is, refused naming the first that is not. An empty value is a version not given: some client
 * libraries send the header for an unset variable as `X-DIP-API-Version: ` (it was refused 400), and an
 * empty member of a list is the same header sent twice, once unset.
 */
export function versionRefusal(given: string | string[] | undefined): string | null {
  if (given === undefined) return null;
  const value = Array.isArray(given) ? given.join(', ') : given;
  for (const one of value.split(',').map((v) => v.trim())) {
    if (one === '') continue;
    const m = VERSION.exec(one);
    if (!m) return `${API_VERSION_HEADER} '${one.slice(0, 40)}' is not a version (MAJOR, MAJOR.MINOR or MAJOR.MINOR.PATCH): this DIP serves DIP API ${DIP_API_VERSION}`;
    if (Number(m[1]) !== SERVED_MAJOR) return `${API_VERSION_HEADER} '${one}' is not served: this DIP serves DIP API ${DIP_API_VERSION} (any ${SERVED_MAJOR}.x request is answered as ${DIP_API_VERSION}); its document is at /api/docs/json`;
  }
  return null;
}
