import type { FastifyInstance } from 'fastify';

/**
 * A fetch-shaped transport that answers a Request from `app` in-process (Fastify inject), with `headers`
 * added: the portals' typed client of the operator API runs over it, so its calls go through exactly the
 * hooks, validation, handlers and serialisation a call over the network does, without a socket.
 */
export function inProcessTransport(app: FastifyInstance, headers: Readonly<Record<string, string>>): (request: Request) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
    const answer = await app.inject({
      method: request.method as 'GET',
      url: `${url.pathname}${url.search}`,
      headers: { ...Object.fromEntries(request.headers), ...headers },
      ...(body ? { payload: body } : {}),
    });
    const answerHeaders = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      for (const v of [value ?? []].flat()) answerHeaders.append(name, String(v));
    }
    // A Response refuses a body with 204 and 304; inject gives an empty one.
    const empty = answer.rawPayload.length === 0;
    return new Response(empty ? null : new Uint8Array(answer.rawPayload), { status: answer.statusCode, headers: answerHeaders });
  };
}
