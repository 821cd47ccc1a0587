/**
 * An annotator's Label Studio instance: start, stop, status, the instance's token report, and the
 * annotator's own Label Studio password. Handlers record the fact in one transaction and wake the
 * reconciler; the `annotators` step (orchestrator/annotators-step.ts) does the work.
 *
 * Mounted before annotatorRoutes so these paths are matched first.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { matchesHash, randomToken, sha256 } from '../crypto.ts';
import type { Annotator } from '../db/types.ts';
import { AppError, badRequest, notFound } from '../errors.ts';
import { ANNOTATOR_STATUSES } from '../domain/annotator-status.ts';
import { findAnnotator, lockAnnotator, transitionAnnotator, writeContainerEvent } from '../workflows/annotators.ts';
import { fleetNames, listenPort, publicUrl, webhookSecret } from '../../orchestrator/instance-spec.ts';
import { errors, IdParam, jsonBody, jsonContent, SuccessSchema } from './common.ts';
import { createRouter } from './router.ts';

const StartResponse = z.object({ success: z.literal(true), status: z.literal('starting') }).openapi('StartResponse');

const StatusResponse = z
  .object({
    status: z.enum(ANNOTATOR_STATUSES),
    containerId: z.string().nullable(),
    containerIp: z.string().nullable(),
    subdomain: z.string(),
    url: z.string().nullable().openapi({ description: 'Set once the route answers; null otherwise' }),
    phase: z
      .enum(['database', 'container', 'healthy', 'token', 'route'])
      .nullable()
      .openapi({ description: 'Where a start is (status starting); null otherwise' }),
    statusReason: z.string().nullable().openapi({ description: 'Why the annotator is in this status (e.g. the error)' }),
  })
  .openapi('AnnotatorStatus');

const TokenBody = z.strictObject({ token: z.string().min(1).max(512) }).openapi('TokenReport');

const PasswordResponse = z
  .object({
    username: z.string().openapi({ description: "The annotator's Label Studio login (their email)" }),
    password: z.string().openapi({ description: 'Shown once; never stored in plain text' }),
  })
  .openapi('AnnotatorPassword');

const WebhookSecretHeader = z.object({
  'x-webhook-secret': z.string().optional().openapi({ param: { name: 'x-webhook-secret', in: 'header' }, description: "The annotator's webhook secret" }),
});

const unauthorizedSecret = () => new AppError(401, 'Invalid or missing X-Webhook-Secret');
/** Compared against when the id is unknown, so that path costs what a wrong secret costs. */
const UNKNOWN_SECRET_HASH = sha256('labelfleet:no-such-annotator');

/** A live (not deleted) annotator, locked for the transaction, or 404. */
async function lockLive(trx: Parameters<typeof lockAnnotator>[0], id: number): Promise<Annotator> {
  const a = await lockAnnotator(trx, id);
  if (a.status === 'deleted') throw notFound('Annotator');
  return a;
}

export function annotatorLifecycleRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;
  const names = fleetNames(ctx.config);

  app.openapi(
    createRoute({
      method: 'post',
      path: '/annotators/{id}/start',
      tags: ['annotators'],
      summary: "Start the annotator's Label Studio (asynchronous: poll /status)",
      description:
        'Records the start and returns at once; the reconciler creates the database, the container and the route, waits until Label Studio is healthy, has reported its token and answers through the route, then sets status active. 400 when already starting/active (or still stopping).',
      request: { params: IdParam },
      responses: { 200: jsonContent(StartResponse, 'Start recorded'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await db.transaction().execute(async (trx) => {
        const a = await lockLive(trx, id);
        if (a.status === 'starting' || a.status === 'active') {
          throw badRequest('Annotator already has an active container', { status: a.status });
        }
        if (a.status === 'stopping') throw badRequest('Annotator is still stopping; start it once it is stopped', { status: a.status });
        const generation = a.startGeneration + 1;
        let port: number | null = null;
        try {
          port = listenPort(ctx.config, id);
        } catch {
          port = null; // the reconciler turns this into an error event
        }
        await transitionAnnotator(trx, id, 'starting', 'start requested by admin', { adminUserId: c.get('adminUserId'), generation });
        const now = new Date();
        await trx
          .updateTable('annotators')
          .set({
            startGeneration: generation,
            // Rotated at each start; only the hash is kept (the instance gets it derived, see instance-spec.ts).
            webhookSecretHash: sha256(webhookSecret(ctx.secrets, id, generation)),
            startRequestedAt: now,
            startPhase: 'database',
            phaseStartedAt: now,
            tokenReportedAt: null,
            routedAt: null,
            restartCount: 0,
            lastRestartAt: null,
            nextRestartAt: null,
            databaseName: ctx.instanceDatabases.name(id),
            containerId: names.instance(id),
            containerPort: port,
            statusReason: 'starting: database',
            updatedAt: now,
          })
          .where('id', '=', id)
          .execute();
      });
      ctx.wake(`annotator ${id}: start`);
      return c.json({ success: true as const, status: 'starting' as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/annotators/{id}/stop',
      tags: ['annotators'],
      summary: "Stop the annotator's Label Studio (also calls off a start in progress)",
      description: 'Docker: the container is stopped (data and route kept). ECS: the service is scaled to 0. 400 when nothing is running (created, stopping, stopped).',
      request: { params: IdParam },
      responses: { 200: jsonContent(SuccessSchema, 'Stop recorded'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await db.transaction().execute(async (trx) => {
        const a = await lockLive(trx, id);
        if (a.status !== 'starting' && a.status !== 'active' && a.status !== 'error') {
          throw badRequest('Annotator has no running container', { status: a.status });
        }
        await transitionAnnotator(trx, id, 'stopping', a.status === 'starting' ? 'start called off by admin' : 'stop requested by admin', {
          adminUserId: c.get('adminUserId'),
        });
        await trx
          .updateTable('annotators')
          .set({ startPhase: null, phaseStartedAt: null, routedAt: null, nextRestartAt: null, updatedAt: new Date() })
          .where('id', '=', id)
          .execute();
      });
      ctx.wake(`annotator ${id}: stop`);
      return c.json({ success: true as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/annotators/{id}/status',
      tags: ['annotators'],
      summary: "The annotator's container lifecycle status",
      description: '`url` is reported only while active and once the route answers through the router.',
      request: { params: IdParam },
      responses: { 200: jsonContent(StatusResponse, 'Status'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const a = await findAnnotator(db, c.req.valid('param').id);
      return c.json(
        {
          status: a.status,
          containerId: a.containerId,
          containerIp: a.containerIp,
          subdomain: a.subdomain,
          url: a.status === 'active' && a.routedAt ? publicUrl(ctx.config, a.subdomain) : null,
          phase: a.status === 'starting' ? a.startPhase : null,
          statusReason: a.statusReason,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/annotators/{id}/token',
      tags: ['annotators'],
      summary: "The instance reports its API token (X-Webhook-Secret, no session)",
      description:
        "Called by the Label Studio entrypoint. The secret is compared in constant time with the hash stored at start, before anything is locked; an unknown id and a wrong secret both answer 401. The token is stored sealed.",
      request: { params: IdParam, headers: WebhookSecretHeader, ...jsonBody(TokenBody) },
      responses: { 200: jsonContent(SuccessSchema, 'Token stored'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { token } = c.req.valid('json');
      const secret = c.req.header('x-webhook-secret') ?? '';
      // The secret is checked before any row is locked, and an unknown or deleted id answers as a
      // wrong secret does (401, same work): the route tells a stranger nothing about which ids exist.
      const current = await db.selectFrom('annotators').select(['status', 'webhookSecretHash']).where('id', '=', id).executeTakeFirst();
      const live = current !== undefined && current.status !== 'deleted';
      const matches = matchesHash(secret, live ? current.webhookSecretHash : UNKNOWN_SECRET_HASH);
      if (!secret || !live || !matches) throw unauthorizedSecret();
      const accepted = await db.transaction().execute(async (trx) => {
        const a = await lockAnnotator(trx, id);
        // A start or delete between the check and the lock rotated the secret: the report is stale.
        if (a.status === 'deleted' || !matchesHash(secret, a.webhookSecretHash)) return false;
        await trx
          .updateTable('annotators')
          .set({ apiTokenEnc: ctx.secrets.encrypt(token), tokenReportedAt: new Date(), updatedAt: new Date() })
          .where('id', '=', id)
          .execute();
        await writeContainerEvent(trx, {
          annotatorId: id,
          eventType: 'token_reported',
          fromStatus: a.status,
          toStatus: a.status,
          message: 'instance reported its API token',
          details: { generation: a.startGeneration },
        });
        return true;
      });
      if (!accepted) throw unauthorizedSecret();
      ctx.wake(`annotator ${id}: token reported`);
      return c.json({ success: true as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/annotators/{id}/password',
      tags: ['annotators'],
      summary: "Issue or reset the annotator's own Label Studio password (shown once)",
      description:
        "The annotator logs in to their Label Studio with their email and this password. It is stored sealed (never in plain text) and applied by the instance's entrypoint: at the next start, or at once for a running instance (its container is recreated).",
      request: { params: IdParam },
      responses: { 200: jsonContent(PasswordResponse, 'Password issued'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const password = randomToken(15);
      const a = await db.transaction().execute(async (trx) => {
        const current = await lockLive(trx, id);
        await trx
          .updateTable('annotators')
          .set({ lsPasswordEnc: ctx.secrets.encrypt(password), lsPasswordVersion: current.lsPasswordVersion + 1, updatedAt: new Date() })
          .where('id', '=', id)
          .execute();
        const running = current.status === 'starting' || current.status === 'active';
        await writeContainerEvent(trx, {
          annotatorId: id,
          eventType: 'password_issued',
          fromStatus: current.status,
          toStatus: current.status,
          message: running ? 'Label Studio password issued; applying it to the running instance' : 'Label Studio password issued; applied at the next start',
          details: { adminUserId: c.get('adminUserId'), version: current.lsPasswordVersion + 1 },
        });
        return current;
      });
      ctx.wake(`annotator ${id}: password issued`);
      return c.json({ username: a.email, password }, 200);
    },
  );

  return app;
}
