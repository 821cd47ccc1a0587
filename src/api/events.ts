/**
 * Events: one audit log over container lifecycle events and annotation events, newest first.
 * The merge and the total are read by src/db/events.ts (shared with the console; its header says
 * how they stay fast); this file validates, documents and serves them.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { EVENT_TYPES, listEvents } from '../db/events.ts';
import { EntityRef, Envelope, envelope, errors, idString, jsonContent, PaginationQuery, Timestamp } from './common.ts';
import { createRouter } from './router.ts';

const Common = {
  id: z.number().int(),
  annotatorId: z.number().int(),
  annotator: EntityRef,
  eventType: z.string(),
  createdAt: Timestamp,
};
const ContainerEventSchema = z
  .object({
    type: z.literal('container'),
    ...Common,
    fromStatus: z.string().nullable(),
    toStatus: z.string().nullable(),
    message: z.string().nullable(),
    details: z.unknown().nullable(),
  })
  .openapi('ContainerEvent');
const AnnotationEventSchema = z
  .object({
    type: z.literal('annotation'),
    ...Common,
    assignmentId: z.number().int().nullable(),
    lsProjectId: z.number().int().nullable(),
    lsTaskId: z.number().int().nullable(),
    lsAnnotationId: z.number().int(),
    timeSpentMs: z.number().int().nullable(),
    source: z.enum(['webhook', 'reconcile']),
  })
  .openapi('AnnotationEvent');
export const EventSchema = z.discriminatedUnion('type', [ContainerEventSchema, AnnotationEventSchema]).openapi('Event');

const ListQuery = PaginationQuery.extend({
  type: z.enum(EVENT_TYPES).optional().openapi({ description: 'Only container or only annotation events; both when absent' }),
  annotatorId: idString.optional().openapi({ type: 'integer', description: 'Filter by annotator' }),
});

export function eventRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/events',
      tags: ['events'],
      summary: 'Container and annotation events merged, newest first (paginated envelope)',
      request: { query: ListQuery },
      responses: { 200: jsonContent(Envelope(EventSchema), 'Events'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const { data, total } = await listEvents(db, { type: q.type, annotatorId: q.annotatorId }, q);
      return c.json(envelope(data, total, q), 200);
    },
  );

  return app;
}
