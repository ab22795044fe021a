import fp from 'fastify-plugin';
import { OPERATOR_DOCS } from './admin-schemas.js';
import { registerApiDocs } from './openapi.js';

export interface OperatorDocsOptions {
  environment: string;
  dipId: string;
}

/**
 * The operator API's reference: an OpenAPI 3.1 document (`/admin/api/docs/json`, `/yaml`) generated from
 * the route schemas of this listener, and Swagger UI to read and try it.
 *
 * Served without the operator token, like the participant listener's /api/docs: the listener is bound to
 * the loopback interface, the document says only what the published source says, and a browser opening
 * Swagger UI cannot send a bearer token with the page; the operator enters it in Swagger UI's
 * "Authorize" to try a call, and every call stays behind the token and the operator's role.
 * Wrapped with fastify-plugin: the document generator must hook the listener itself to see the routes
 * every sibling plugin registers.
 */
export const registerOperatorDocs = fp<OperatorDocsOptions>(
  async (app, o) => {
    await registerApiDocs(app, {
      // OpenDIP's own API, with no published 3.0 counterpart: JSON Schema as it is.
      openapi: '3.1.0',
      prefix: OPERATOR_DOCS,
      title: 'OpenDIP: operator API',
      version: '1.0.0',
      description: [
        `The operator API of this DIP (${o.environment}, DIP ID ${o.dipId}): bound to the loopback interface, every call names its operator by a bearer token (an operator account's, or the bootstrap token in <data>/admin-token), and the operator's role decides what it may call (viewer: reads; operator: also runs the DIP; admin: also operator accounts, PKI and data keys).`,
        'Every refusal is {"error": "<what and why>"}. Every call that changes something is journalled with the operator\'s name (GET /admin/journal).',
        'The participant API is documented on the participant listener at /api/docs.',
      ].join('\n\n'),
      securitySchemes: { operatorToken: { type: 'http', scheme: 'bearer', description: "An operator account's token, or the bootstrap token in <data>/admin-token" } },
      security: [{ operatorToken: [] }],
    });
  },
  { name: 'operator-docs' },
);
