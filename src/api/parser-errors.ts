/**
 * What an error of Node's HTTP parser (a server's 'clientError') is answered with: one reading for the
 * listener that answers it (src/api/server.ts) and the activity log that records it (src/api/activity.ts).
 */

/** A 'clientError' as Node raises it: the parser's code, and the chunk it failed in with how far it got. */
export type ParserError = Error & { code?: string; rawPacket?: unknown; bytesParsed?: number };

/** RFC 9110 5.6.2 token: what a method name is made of. */
const TOKEN = /^[!#$%&'*+\-.^`|~\w]+ /;

/**
 * The method a request line names when it is a well-formed token that Node's parser does not know (`FOO`,
 * or `get`: methods are case-sensitive, RFC 9110 9.1); null for any other error, a method that is not a
 * token (`P@ST`) included. llhttp refuses every method outside its list as HPE_INVALID_METHOD, so the line
 * itself is read: from the start of the line the parser failed in (the chunk may begin with requests
 * before it) to the first space.
 */
export function unrecognisedMethod(err: ParserError): string | null {
  if (err.code !== 'HPE_INVALID_METHOD' || !Buffer.isBuffer(err.rawPacket)) return null;
  const failedAt = Math.min(err.bytesParsed ?? 0, err.rawPacket.length);
  const lineStart = err.rawPacket.lastIndexOf(0x0a, failedAt) + 1;
  const line = err.rawPacket.subarray(lineStart, lineStart + 64).toString('latin1');
  return TOKEN.exec(line)?.[0].trimEnd() ?? null;
}

/**
 * The status a parser error is answered with: 408 headers too slow, 505 a version other than HTTP/1.x,
 * 431 headers too large, 501 a method not recognised (RFC 9110 15.6.2), 400 anything else that is not HTTP.
 */
export function parserErrorStatus(err: ParserError): number {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  if (err.code === 'HPE_INVALID_VERSION') return 505;
  if (err.code === 'HPE_HEADER_OVERFLOW') return 431;
  if (unrecognisedMethod(err) !== null) return 501;
  return 400;
}
