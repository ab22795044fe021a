import type { FastifyPluginAsync } from 'fastify';
import { SLOTS, type AppointmentChange } from '../domain/mpan-lookup.js';
import type { MpanDirectory } from '../pipeline/mpan-directory.js';
import type { Logger } from '../ports/logger.js';
import { answers, isoTime } from './admin-schemas.js';

export interface MpanRouteOptions {
  mpan: Pick<MpanDirectory, 'history' | 'apply'>;
  logger: Logger;
  now(): number;
}

interface ChangeBody {
  kind?: 'appoint' | 'end';
  mpan: string;
  slot: (typeof SLOTS)[number];
  dipId: string;
  effectiveFrom?: string;
  effectiveTo?: string | null;
}

const mpanParam = { type: 'string', pattern: '^\\d{13}$', description: 'The 13-digit MPAN' } as const;

const changesBody = {
  type: 'array',
  maxItems: 100_000,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['mpan', 'slot', 'dipId'],
    properties: {
      kind: { type: 'string', enum: ['appoint', 'end'], default: 'appoint' },
      mpan: mpanParam,
      slot: { type: 'string', enum: SLOTS },
      dipId: { type: 'string', minLength: 1, maxLength: 20 },
      effectiveFrom: { ...isoTime, description: 'From when (appoint); default: always' },
      effectiveTo: { type: ['string', 'null'], format: 'date-time', description: 'Until when; for end, default now' },
    },
  },
} as const;

const appointment = {
  type: 'object',
  required: ['slot', 'dipId', 'effectiveFrom', 'effectiveTo'],
  properties: { slot: { type: 'string', enum: SLOTS }, dipId: { type: 'string' }, effectiveFrom: isoTime, effectiveTo: { type: ['string', 'null'], format: 'date-time' } },
} as const;

/** The MPAN lookup (secondary routing): the operator's view and corrections, and the target of bulk loads (dip mpan load). */
export const mpanRoutes: FastifyPluginAsync<MpanRouteOptions> = async (app, deps) => {
  const tags = ['MPAN lookup'];
  app.get<{ Params: { mpan: string } }>(
    '/admin/mpan/:mpan',
    {
      schema: {
        tags,
        summary: "An MPAN's appointments, past and present",
        params: { type: 'object', required: ['mpan'], properties: { mpan: mpanParam } },
        response: answers({ 200: { type: 'array', items: appointment, description: 'Its appointments' } }),
      },
    },
    async (req) =>
      (await deps.mpan.history(req.params.mpan)).map((a) => ({
        slot: a.slot,
        dipId: a.dipId,
        effectiveFrom: new Date(a.fromMs).toISOString(),
        effectiveTo: a.toMs === null ? null : new Date(a.toMs).toISOString(),
      })),
  );

  app.post<{ Body: ChangeBody[] }>(
    '/admin/mpan/changes',
    { schema: { tags, summary: 'Appoint or end appointments, in one transaction', body: changesBody, response: answers({ 200: { type: 'object', required: ['applied'], properties: { applied: { type: 'integer' } }, description: 'How many changes were applied' } }) } },
    async (req) => {
      const changes: AppointmentChange[] = req.body.map((c) => {
        const fromMs = c.effectiveFrom === undefined ? 0 : Date.parse(c.effectiveFrom);
        const toMs = c.effectiveTo === undefined || c.effectiveTo === null ? null : Date.parse(c.effectiveTo);
        return c.kind === 'end'
          ? { kind: 'end', mpan: c.mpan, slot: c.slot, dipId: c.dipId, toMs: toMs ?? deps.now() }
          : { kind: 'appoint', mpan: c.mpan, slot: c.slot, dipId: c.dipId, fromMs, toMs };
      });
      await deps.mpan.apply(changes);
      deps.logger.info({ count: changes.length }, 'MPAN lookup changed by the operator');
      return { applied: changes.length };
    },
  );
};
