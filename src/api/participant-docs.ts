import fp from 'fastify-plugin';
import type { RoutePluginOptions } from './deps.js';
import { registerApiDocs } from './openapi.js';
import { DIP_API_VERSION } from '../domain/api-version.js';

/** Where the participant listener serves its OpenAPI document (`/json`, `/yaml`) and Swagger UI. */
export const PARTICIPANT_DOCS = '/api/docs';

/**
 * The participant listener's API catalogue (spec 5.8): the published API 2.1.0 operations as they are,
 * and OpenDIP's own beside them, tagged "(OpenDIP)" and listed in docs/api-differences.md.
 * Wrapped with fastify-plugin: the document generator must hook the listener itself to see the
 * routes every sibling plugin registers.
 */
export const registerParticipantDocs = fp<RoutePluginOptions>(
  async (app, { deps }) => {
    await registerApiDocs(app, {
      // As the published DIP API 2.1.0 documents are: participants generate clients from both with the same tools.
      openapi: '3.0.3',
      prefix: PARTICIPANT_DOCS,
      title: 'OpenDIP: DIP - Send Messages & Receive Publications',
      version: DIP_API_VERSION,
      description: [
        `The participant API of this DIP (${deps.config.environment}, DIP ID ${deps.config.dipId}), wire-compatible with the published DIP API 2.1.0.`,
        "Every call is made over mutual TLS with a client certificate issued by the environment's CA naming the participant's DIP ID, carries the X-API-Key header and is signed (X-DIP-Signature, X-DIP-Signature-Date, X-DIP-Content-Hash, X-DIP-Signature-Certificate).",
        'Operations tagged (OpenDIP) go beyond the published API: docs/api-differences.md.',
        `Every answer carries the header X-DIP-API-Version: ${DIP_API_VERSION}, the version it was served under. A request may name the version it was written for in the same header: any ${DIP_API_VERSION.split('.')[0]}.x is answered as ${DIP_API_VERSION}; another major version is refused 400 (MSG1001) saying which is served. Naming none is as naming ${DIP_API_VERSION}. Versions and deprecations: README "API versions".`,
        'What the DIP sends to webhooks: the AsyncAPI document at /api/asyncapi.json. Every interface, event code and data item: the data portal at /catalogue.',
      ].join('\n\n'),
      // The published scheme only: OpenAPI 3.0 has no mutualTLS scheme, so the client certificate is said in the description above.
      securitySchemes: { ApiKeyAuth: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
      security: [{ ApiKeyAuth: [] }],
    });
  },
  { name: 'participant-docs' },
);
