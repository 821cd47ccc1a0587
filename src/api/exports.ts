/**
 * GET /api/workflows/:id/export?format=jsonl|json|csv|coco|yolo&since=&status= — a workflow's labels,
 * streamed page by page from the database (src/workflows/export.ts) with backpressure, so memory
 * stays flat whatever the number of items.
 *
 * - jsonl (default): one record per line (application/x-ndjson), the same lines as the JSONL
 *   beside each batch's JSON export in S3.
 * - json: the same records as one JSON array.
 * - csv: one row per record; `result` as JSON text (RFC 4180 quoting, csv-stringify).
 * - coco: one COCO detection JSON (images, annotations, categories); rectangle configs only.
 * - yolo: a gzipped tar (Ultralytics layout: `data.yaml`, `classes.txt`, and
 *   `labels/<image key without extension>.txt` — put the images from S3 beside them under
 *   `images/`); rectangle configs only.
 * COCO and YOLO take each image once, with its newest annotation in the workflow. Boxes whose
 * result lacks the image size cannot be placed in pixels and are left out of COCO (YOLO keeps them:
 * it is normalised).
 */
import { createGzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { createRoute, z } from '@hono/zod-openapi';
import { stringify } from 'csv-stringify/sync';
import { pack as tarPack } from 'tar-stream';
import type { AppContext } from '../context.ts';
import type { Executor } from '../db/index.ts';
import type { AssignmentStatus } from '../db/types.ts';
import { cocoAnnotation, rectangleClasses, rectangles, yoloLabelPath, yoloLine } from '../domain/label-formats.ts';
import { badRequest, notFound } from '../errors.ts';
import { exportLines, exportRecords, type ExportFilter, type ExportRecord } from '../workflows/export.ts';
import { errors, IdParam } from './common.ts';
import { ASSIGNMENT_STATUSES } from './assignments.ts';
import { createRouter } from './router.ts';

export const EXPORT_FORMATS = ['jsonl', 'json', 'csv', 'coco', 'yolo'] as const;
type Format = (typeof EXPORT_FORMATS)[number];

const CONTENT: Record<Format, { type: string; ext: string }> = {
  jsonl: { type: 'application/x-ndjson', ext: 'jsonl' },
  json: { type: 'application/json', ext: 'json' },
  csv: { type: 'text/csv; charset=utf-8', ext: 'csv' },
  coco: { type: 'application/json', ext: 'coco.json' },
  yolo: { type: 'application/gzip', ext: 'yolo.tar.gz' },
};

const ExportQuery = z.object({
  format: z.enum(EXPORT_FORMATS).optional().openapi({ default: 'jsonl' }),
  since: z.iso
    .datetime({ offset: true })
    .optional()
    .openapi({ description: 'Only tasks of batches completed at or after this instant (for batches not completed: tasks annotated since)' }),
  status: z
    .string()
    .optional()
    .openapi({ description: `Batch statuses, comma-separated (${ASSIGNMENT_STATUSES.join(', ')}); default completed`, example: 'completed' }),
});

function parseStatuses(value: string | undefined): AssignmentStatus[] {
  if (value === undefined) return ['completed'];
  const list = [...new Set(value.split(',').map((s) => s.trim()).filter(Boolean))];
  const bad = list.filter((s) => !(ASSIGNMENT_STATUSES as readonly string[]).includes(s));
  if (!list.length || bad.length) throw badRequest(`status: must be a comma-separated list of ${ASSIGNMENT_STATUSES.join(', ')}`, { invalid: bad });
  return list as AssignmentStatus[];
}

const CSV_COLUMNS = [
  'image_key',
  'workflow_id',
  'batch_id',
  'task_id',
  'ls_task_id',
  'ls_annotation_id',
  'annotator_id',
  'annotator_name',
  'annotated_at',
  'lead_time_seconds',
  'skipped',
  'review_decision',
  'review_reason',
  'batch_gold_score',
  'result',
];
const csvRow = (r: ExportRecord) => [
  r.imageKey,
  r.workflowId,
  r.batchId,
  r.taskId,
  r.lsTaskId,
  r.lsAnnotationId,
  r.annotator.id,
  r.annotator.name,
  r.annotatedAt,
  r.leadTimeSeconds,
  r.skipped,
  r.review?.decision ?? null,
  r.review?.reason ?? null,
  r.gold?.batchScore ?? null,
  JSON.stringify(r.result),
];

/** The export as text chunks (one per page), for the formats that are text. */
async function* textChunks(format: Exclude<Format, 'yolo'>, filter: ExportFilter, db: Executor, classes: string[]): AsyncGenerator<string> {
  const pages = () => exportRecords(db, filter);
  if (format === 'jsonl') {
    for await (const lines of exportLines(db, filter)) yield `${lines.join('\n')}\n`;
  } else if (format === 'json') {
    let first = true;
    yield '[';
    for await (const lines of exportLines(db, filter)) {
      yield `${first ? '' : ','}\n${lines.join(',\n')}`;
      first = false;
    }
    yield '\n]\n';
  } else if (format === 'csv') {
    yield stringify([CSV_COLUMNS]);
    for await (const page of pages()) yield stringify(page.map(csvRow));
  } else {
    // COCO: categories, then images, then annotations (a second pass over the same pages).
    const categories = classes.map((name, id) => ({ id, name, supercategory: 'none' }));
    yield `{"info":${JSON.stringify({ description: `LabelFleet workflow ${filter.workflowId}`, date_created: new Date().toISOString() })},"licenses":[],"categories":${JSON.stringify(categories)},"images":[`;
    let first = true;
    const sep = () => (first ? ((first = false), '') : ',');
    for await (const page of pages()) {
      yield page
        .map((r) => {
          const size = rectangles(r.result, classes).find((b) => b.imageWidth && b.imageHeight);
          const image: Record<string, unknown> = { id: r.taskId, file_name: r.imageKey };
          if (size) Object.assign(image, { width: size.imageWidth, height: size.imageHeight });
          return `${sep()}\n${JSON.stringify(image)}`;
        })
        .join('');
    }
    yield '],"annotations":[';
    first = true;
    let nextId = 1;
    for await (const page of pages()) {
      const parts: string[] = [];
      for (const r of page) {
        for (const box of rectangles(r.result, classes)) {
          if (box.imageWidth && box.imageHeight) parts.push(`${sep()}\n${JSON.stringify(cocoAnnotation(box, nextId++, r.taskId))}`);
        }
      }
      yield parts.join('');
    }
    yield ']}\n';
  }
}

/** The YOLO dataset as a gzipped tar; each entry waits for the consumer (tar-stream's callback). */
function yoloArchive(pages: () => AsyncGenerator<ExportRecord[]>, classes: string[], onError: (err: unknown) => void): Readable {
  const pack = tarPack();
  const add = (name: string, body: string) => new Promise<void>((resolve, reject) => pack.entry({ name, mtime: new Date(0) }, body, (err) => (err ? reject(err) : resolve())));
  void (async () => {
    try {
      await add('classes.txt', classes.map((c) => `${c}\n`).join(''));
      await add('data.yaml', `# LabelFleet export: labels/<key>.txt labels the S3 object <key>.<extension> of the fleet's bucket\npath: .\ntrain: images\nval: images\nnc: ${classes.length}\nnames:\n${classes.map((c, i) => `  ${i}: ${JSON.stringify(c)}`).join('\n')}\n`);
      for await (const page of pages()) {
        for (const r of page) {
          const lines = rectangles(r.result, classes).map(yoloLine);
          await add(yoloLabelPath(r.imageKey), lines.length ? `${lines.join('\n')}\n` : '');
        }
      }
      pack.finalize();
    } catch (err) {
      onError(err);
      pack.destroy(err as Error);
    }
  })();
  return (pack as unknown as Readable).pipe(createGzip());
}

export function exportRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/workflows/{id}/export',
      tags: ['workflows'],
      summary: "Export a workflow's labels (streamed): JSONL, JSON, CSV, COCO or YOLO",
      request: { params: IdParam, query: ExportQuery },
      responses: {
        200: {
          description: 'The export, streamed',
          content: {
            'application/x-ndjson': { schema: z.string() },
            'application/json': { schema: z.unknown() },
            'text/csv': { schema: z.string() },
            'application/gzip': { schema: z.string().openapi({ format: 'binary' }) },
          },
        },
        400: errors[400],
        401: errors[401],
        404: errors[404],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const q = c.req.valid('query');
      const format: Format = q.format ?? 'jsonl';
      const statuses = parseStatuses(q.status);
      const workflow = await db
        .selectFrom('workflows')
        .leftJoin('labelingConfigs as lc', 'lc.id', 'workflows.labelingConfigId')
        .select(['workflows.id', 'lc.configXml'])
        .where('workflows.id', '=', id)
        .executeTakeFirst();
      if (!workflow) throw notFound('Workflow');
      const detection = format === 'coco' || format === 'yolo';
      const classes = detection ? rectangleClasses(workflow.configXml ?? '') : [];
      if (detection && !classes.length) {
        throw badRequest(`format ${format} needs a labeling config with RectangleLabels (this workflow's has none)`);
      }
      const filter: ExportFilter = { workflowId: id, statuses, since: q.since ? new Date(q.since) : null, latestPerImage: detection };
      const log = c.get('log');
      const onError = (err: unknown) => log.error({ err, workflowId: id, format }, 'export failed mid-stream');

      let body: ReadableStream<Uint8Array>;
      if (format === 'yolo') {
        body = Readable.toWeb(yoloArchive(() => exportRecords(db, filter), classes, onError)) as ReadableStream<Uint8Array>;
      } else {
        const chunks = textChunks(format, filter, db, classes);
        const encoder = new TextEncoder();
        body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            try {
              const next = await chunks.next();
              if (next.done) controller.close();
              else if (next.value) controller.enqueue(encoder.encode(next.value));
            } catch (err) {
              onError(err);
              controller.error(err);
            }
          },
          async cancel() {
            await chunks.return(undefined);
          },
        });
      }
      return c.body(body, 200, {
        'Content-Type': CONTENT[format].type,
        'Content-Disposition': `attachment; filename="workflow-${id}.${CONTENT[format].ext}"`,
        'Cache-Control': 'no-store',
      });
    },
  );

  return app;
}
