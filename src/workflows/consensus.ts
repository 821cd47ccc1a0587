/**
 * Overlap workflows once answers are in: each item's consensus when its last seat's batch
 * completes, the workflow's agreement sums, and where the item goes next (issue 13).
 *
 * When. An annotation may change until its batch completes, so an item's answers are final when
 * every seat's batch has completed (completeAssignment calls finishOverlap in the transaction that
 * completes a batch). The item row is locked before its seats are counted, so when the last two
 * seats' batches complete at once, exactly one of them sees all seats done and finishes the item.
 *
 * Consensus: the phase-1 merge of this one item (src/domain/agreement/rollup.ts, itemContribution):
 * choices by one E-step on the control's stored Dawid–Skene fit when the reconciler has stored one
 * (consensus-fit.ts; method 'dawid-skene', confidence the posterior), else by majority vote (ties
 * to the first label in code-unit order); ratings and numbers by median, regions by majority
 * clusters, text by medoid; agreement and confidence as workflow.ts defines them. The fit itself
 * needs every item's answers together, so it is made by the reconciler, not here: README
 * "Overlap and consensus".
 *
 * Next. Agreement at or above the workflow's consensusThreshold (or no threshold, or fewer than
 * two answers, or no adjudication workflow): the item flows to the workflows downstream with the
 * consensus as its prediction. Below it: the item is queued in adjudicationWorkflowId carrying
 * every annotator's result as a Label Studio prediction named by annotator (model_version
 * "annotator <id>: <name>"), plus the consensus; when the adjudicator's batch completes, their
 * annotation becomes the item's result and flows downstream of the overlap workflow.
 * Everything is keyed (item, upstream task): a retried completion adds nothing. The batches holding
 * seats of an item whose consensus or adjudicated result was just settled are listed for their JSONL
 * export to be written again (overlap-exports.ts).
 */
import { sql } from 'kysely';
import type { Executor, Tx } from '../db/index.ts';
import type { Assignment } from '../db/types.ts';
import { controlsFromConfig, controlsFromResults, kindOf, type ControlSpec } from '../domain/agreement/controls.ts';
import { agreementReport, agreementWithMerged, ITEM_ROW, itemContribution, type AgreementReport, type ItemContribution, type WorkflowSums } from '../domain/agreement/rollup.ts';
import type { StoredFit } from '../domain/agreement/dawid-skene.ts';
import { checkLabelingConfig } from '../domain/labeling-config.ts';
import { predictionFor } from '../domain/task-data.ts';
import { enqueueOutbound } from '../outbound/events.ts';

/** The controls of a workflow's labeling config (inferred from the answers when it does not parse). */
export function controlsOf(configXml: string | null, answers: readonly unknown[]): ControlSpec[] {
  const parsed = configXml ? checkLabelingConfig(configXml) : null;
  return parsed?.ok ? controlsFromConfig(parsed.config) : controlsFromResults(answers);
}

/** What an adjudication item carries in work_items.prediction: one prediction per annotator. */
export interface AdjudicationPredictions {
  predictions: { model_version: string; result: unknown[] }[];
}

/**
 * The Label Studio predictions to import with a task: an adjudication item's predictions (one per
 * annotator, then the consensus), or the upstream annotation of a chained item as today
 * (model_version 'labelfleet-upstream'). Results for controls the config lacks are left out.
 */
export function predictionsFor(prediction: unknown, names: Set<string>): { model_version: string; result: Record<string, unknown>[] }[] {
  if (prediction && typeof prediction === 'object' && !Array.isArray(prediction) && Array.isArray((prediction as AdjudicationPredictions).predictions)) {
    return (prediction as AdjudicationPredictions).predictions
      .map((p) => ({ model_version: String(p.model_version).slice(0, 200), result: predictionFor(p.result, names) }))
      .filter((p) => p.result.length);
  }
  const result = predictionFor(prediction, names);
  return result.length ? [{ model_version: 'labelfleet-upstream', result }] : [];
}

interface SeatAnswer {
  annotatorId: number;
  annotatorName: string;
  taskId: number;
  assignmentId: number;
  result: unknown;
  skipped: boolean;
}

/**
 * In the transaction that completes batch `a`: its seats are done, items whose seats are all done
 * get their consensus, and adjudication items of `a` hand their result back. No-op for a batch
 * of an overlap-1 workflow.
 */
export async function finishOverlap(trx: Tx, a: Assignment): Promise<void> {
  const { rows: seated } = await sql<{ workItemId: number }>`
    UPDATE work_item_seats s SET status = 'done', task_id = t.id
      FROM assignment_tasks t
     WHERE s.assignment_id = ${a.id} AND t.assignment_id = ${a.id} AND t.work_item_id = s.work_item_id
     RETURNING s.work_item_id`.execute(trx);
  if (seated.length) {
    const ids = seated.map((r) => Number(r.workItemId)).sort((x, y) => x - y);
    // Locked in id order: batches completing at once never deadlock on shared items.
    const { rows: items } = await sql<{ id: number; status: string; workflowId: number; imageKey: string; reworkIteration: number }>`
      SELECT id, status, workflow_id, image_key, rework_iteration FROM work_items WHERE id = ANY(${ids}::bigint[]) ORDER BY id FOR UPDATE`.execute(trx);
    const workflow = await trx
      .selectFrom('workflows as w')
      .leftJoin('labelingConfigs as c', 'c.id', 'w.labelingConfigId')
      .select(['w.id', 'w.overlap', 'w.consensusThreshold', 'w.adjudicationWorkflowId', 'c.configXml'])
      .where('w.id', '=', a.workflowId)
      .executeTakeFirstOrThrow();
    const finished: number[] = [];
    let fits: Map<string, StoredFit> | undefined;
    for (const item of items) {
      if (item.status === 'done') continue;
      const answers = await seatAnswers(trx, Number(item.id));
      if (answers.length < workflow.overlap) continue;
      fits ??= await storedFits(trx, workflow.id);
      await finishItem(trx, { ...item, id: Number(item.id) }, answers, workflow, fits);
      finished.push(Number(item.id));
    }
    if (finished.length) await requestExportRefresh(trx, finished);
  }
  await finishAdjudications(trx, a);
}

/** The workflow's stored Dawid–Skene fits by control (consensus-fit.ts); one indexed read. */
async function storedFits(trx: Tx, workflowId: number): Promise<Map<string, StoredFit>> {
  const rows = await trx.selectFrom('consensusFits').select(['fromName', 'fit']).where('workflowId', '=', workflowId).where('fit', 'is not', null).execute();
  return new Map(rows.map((r) => [r.fromName, r.fit as StoredFit]));
}

async function seatAnswers(trx: Tx, workItemId: number): Promise<SeatAnswer[]> {
  const { rows } = await sql<SeatAnswer>`
    SELECT s.annotator_id, n.name AS annotator_name, t.id AS task_id, t.assignment_id, t.result, t.skipped
      FROM work_item_seats s
      JOIN assignment_tasks t ON t.id = s.task_id
      JOIN annotators n ON n.id = s.annotator_id
     WHERE s.work_item_id = ${workItemId} AND s.status = 'done'
     ORDER BY s.seat`.execute(trx);
  return rows;
}

type FinishWorkflow = { id: number; overlap: number; consensusThreshold: number | null; adjudicationWorkflowId: number | null; configXml: string | null };

async function finishItem(
  trx: Tx,
  item: { id: number; workflowId: number; imageKey: string; reworkIteration: number },
  answers: SeatAnswer[],
  workflow: FinishWorkflow,
  choiceFits: ReadonlyMap<string, StoredFit>,
) {
  const specs = controlsOf(workflow.configXml, answers.map((x) => x.result));
  const c = itemContribution(
    { item: item.id, annotations: answers.map((x) => ({ annotator: x.annotatorId, result: x.result ?? [], skipped: x.skipped })) },
    specs,
    { choiceFits },
  );
  const { outcome } = c;
  const adjudicate =
    workflow.adjudicationWorkflowId !== null &&
    workflow.consensusThreshold !== null &&
    outcome.agreement !== null &&
    outcome.agreement < workflow.consensusThreshold;
  // The item's own key downstream: its first seat's task (one item per upstream task and workflow).
  const keyTask = Math.min(...answers.map((x) => x.taskId));
  let adjudicationItemId: number | null = null;
  if (adjudicate) {
    const predictions: AdjudicationPredictions = {
      predictions: [
        ...answers.map((x) => ({ model_version: `annotator ${x.annotatorId}: ${x.annotatorName}`, result: x.skipped ? [] : ((x.result as unknown[]) ?? []) })),
        { model_version: 'labelfleet-consensus', result: outcome.result },
      ],
    };
    const { rows } = await sql<{ id: number }>`
      INSERT INTO work_items (workflow_id, image_key, source, priority, upstream_task_id, origin_task_id, prediction, rework_iteration)
      VALUES (${workflow.adjudicationWorkflowId}, ${item.imageKey}, 'chain', 1, ${keyTask}, ${keyTask}, ${JSON.stringify(predictions)}::jsonb, ${item.reworkIteration})
      ON CONFLICT (workflow_id, upstream_task_id) WHERE upstream_task_id IS NOT NULL DO NOTHING
      RETURNING id`.execute(trx);
    adjudicationItemId = rows[0] ? Number(rows[0].id) : null;
    await enqueueOutbound(trx, {
      type: 'item.adjudication_needed',
      workflowId: workflow.id,
      dedupeKey: `item.adjudication_needed:${item.id}`,
      data: {
        workflowId: workflow.id,
        imageKey: item.imageKey,
        itemId: item.id,
        batchIds: answers.map((x) => x.assignmentId),
        annotatorIds: answers.map((x) => x.annotatorId),
        agreement: outcome.agreement,
      },
    });
  } else {
    await chainResult(trx, workflow.id, item, keyTask, outcome.result);
  }
  await trx
    .insertInto('itemConsensus')
    .values({
      workItemId: item.id,
      workflowId: workflow.id,
      imageKey: item.imageKey,
      agreement: outcome.agreement,
      confidence: outcome.confidence,
      method: c.method,
      result: JSON.stringify(outcome.result),
      answers: JSON.stringify(answers.map((x) => ({ annotatorId: x.annotatorId, taskId: x.taskId, skipped: x.skipped, result: x.result ?? [] }))),
      controls: JSON.stringify(outcome.controls),
      outcome: adjudicate ? 'adjudication' : 'accepted',
      adjudicationItemId,
    })
    .onConflict((oc) => oc.column('workItemId').doNothing())
    .execute();
  await trx.updateTable('workItems').set({ status: 'done', updatedAt: new Date() }).where('id', '=', item.id).execute();
  await addToRollups(trx, workflow.id, c);
}

/**
 * The completed batches holding seats of `itemIds` get their JSONL export written again (their
 * records now carry the items' consensus or adjudicated result): overlap-exports.ts.
 */
async function requestExportRefresh(trx: Tx, itemIds: number[]) {
  await sql`
    INSERT INTO batch_export_refresh (assignment_id)
    SELECT DISTINCT s.assignment_id FROM work_item_seats s JOIN assignments a ON a.id = s.assignment_id
     WHERE s.work_item_id = ANY(${itemIds}::bigint[]) AND a.status = 'completed'
     ORDER BY 1
    ON CONFLICT (assignment_id) DO UPDATE SET version = batch_export_refresh.version + 1, requested_at = now()`.execute(trx);
}

/** Queues `result` in every workflow downstream of `workflowId`, keyed by `keyTask`. */
async function chainResult(trx: Tx, workflowId: number, item: { imageKey: string; reworkIteration: number }, keyTask: number, result: unknown) {
  await sql`
    INSERT INTO work_items (workflow_id, image_key, source, priority, upstream_task_id, origin_task_id, prediction, rework_iteration)
    SELECT d.id, ${item.imageKey}, 'chain', 1, ${keyTask}, ${keyTask}, ${JSON.stringify(result ?? [])}::jsonb, ${item.reworkIteration}
      FROM workflows d WHERE d.previous_workflow_id = ${workflowId}
    ON CONFLICT (workflow_id, upstream_task_id) WHERE upstream_task_id IS NOT NULL DO NOTHING`.execute(trx);
}

/** Adjudication items of batch `a`: the adjudicator's annotation becomes the item's result. */
async function finishAdjudications(trx: Tx, a: Assignment) {
  const { rows } = await sql<{ workItemId: number; workflowId: number; imageKey: string; result: unknown; skipped: boolean; taskId: number; consensus: unknown; reworkIteration: number }>`
    SELECT c.work_item_id, c.workflow_id, c.image_key, t.result, t.skipped, t.id AS task_id, c.result AS consensus, i.rework_iteration
      FROM assignment_tasks t
      JOIN item_consensus c ON c.adjudication_item_id = t.work_item_id AND c.outcome = 'adjudication'
      JOIN work_items i ON i.id = c.work_item_id
     WHERE t.assignment_id = ${a.id} AND NOT t.is_gold AND t.status = 'annotated'
     ORDER BY c.work_item_id
       FOR UPDATE OF c`.execute(trx);
  for (const r of rows) {
    // A skipped adjudication leaves the consensus standing.
    const result = r.skipped ? r.consensus : (r.result ?? []);
    await trx
      .updateTable('itemConsensus')
      .set({ outcome: 'adjudicated', adjudicatedResult: JSON.stringify(result), adjudicatorId: a.annotatorId, updatedAt: new Date() })
      .where('workItemId', '=', Number(r.workItemId))
      .execute();
    await chainResult(trx, r.workflowId, r, r.taskId, result);
  }
  if (rows.length) await requestExportRefresh(trx, rows.map((r) => Number(r.workItemId)));
}

/** Adds one item's contribution to the workflow's sums (upserts in key order). */
async function addToRollups(trx: Tx, workflowId: number, c: ItemContribution) {
  for (const x of [...c.controls].sort((p, q) => (p.fromName < q.fromName ? -1 : 1))) {
    await sql`INSERT INTO agreement_controls (workflow_id, from_name, type, items, agreement_sum) VALUES (${workflowId}, ${x.fromName}, ${x.type}, 1, ${x.agreement})
      ON CONFLICT (workflow_id, from_name) DO UPDATE SET items = agreement_controls.items + 1, agreement_sum = agreement_controls.agreement_sum + EXCLUDED.agreement_sum`.execute(trx);
  }
  if (c.coincidences.length) {
    await sql`INSERT INTO agreement_coincidences (workflow_id, from_name, value_a, value_b, o)
      SELECT ${workflowId}, f, a, b, sum(o) FROM unnest(${c.coincidences.map((x) => x.fromName)}::text[], ${c.coincidences.map((x) => x.a)}::text[],
                                                   ${c.coincidences.map((x) => x.b)}::text[], ${c.coincidences.map((x) => x.o)}::float8[]) AS u (f, a, b, o)
       GROUP BY f, a, b ORDER BY f, a, b
      ON CONFLICT (workflow_id, from_name, value_a, value_b) DO UPDATE SET o = agreement_coincidences.o + EXCLUDED.o`.execute(trx);
  }
  if (c.pairs.length) {
    await sql`INSERT INTO agreement_pairs (workflow_id, from_name, annotator_a, annotator_b, items, similarity_sum)
      SELECT ${workflowId}, f, a, b, count(*), sum(s) FROM unnest(${c.pairs.map((x) => x.fromName)}::text[], ${c.pairs.map((x) => x.a)}::int[],
                                                   ${c.pairs.map((x) => x.b)}::int[], ${c.pairs.map((x) => x.similarity)}::float8[]) AS u (f, a, b, s)
       GROUP BY f, a, b ORDER BY f, a, b
      ON CONFLICT (workflow_id, from_name, annotator_a, annotator_b) DO UPDATE
        SET items = agreement_pairs.items + EXCLUDED.items, similarity_sum = agreement_pairs.similarity_sum + EXCLUDED.similarity_sum`.execute(trx);
    const labeled = c.pairs.filter((x) => x.labels);
    if (labeled.length) {
      await sql`INSERT INTO agreement_pair_labels (workflow_id, from_name, annotator_a, annotator_b, label_a, label_b, n)
        SELECT ${workflowId}, f, a, b, la, lb, count(*) FROM unnest(${labeled.map((x) => x.fromName)}::text[], ${labeled.map((x) => x.a)}::int[], ${labeled.map((x) => x.b)}::int[],
                                                    ${labeled.map((x) => x.labels![0])}::text[], ${labeled.map((x) => x.labels![1])}::text[]) AS u (f, a, b, la, lb)
         GROUP BY f, a, b, la, lb ORDER BY f, a, b, la, lb
        ON CONFLICT (workflow_id, from_name, annotator_a, annotator_b, label_a, label_b) DO UPDATE SET n = agreement_pair_labels.n + EXCLUDED.n`.execute(trx);
    }
  }
  if (c.annotators.length) {
    await sql`INSERT INTO agreement_annotators (workflow_id, annotator_id, items, answers, similarity_sum)
      SELECT ${workflowId}, a, count(*), sum(n), sum(s) FROM unnest(${c.annotators.map((x) => x.annotator)}::int[], ${c.annotators.map((x) => x.answers)}::int[],
                                                 ${c.annotators.map((x) => x.similaritySum)}::float8[]) AS u (a, n, s)
       GROUP BY a ORDER BY a
      ON CONFLICT (workflow_id, annotator_id) DO UPDATE
        SET items = agreement_annotators.items + EXCLUDED.items, answers = agreement_annotators.answers + EXCLUDED.answers,
            similarity_sum = agreement_annotators.similarity_sum + EXCLUDED.similarity_sum`.execute(trx);
  }
}

/**
 * What the agreement report of a workflow depends on besides the rollup rows, and a counter of
 * those rows: every item that adds to the rollups adds 1 to the whole-item row (from_name '',
 * ITEM_ROW; an item with fewer than two answers adds nothing anywhere), so equal heads mean equal
 * rollups. Null for an unknown workflow.
 */
async function agreementHead(db: Executor, workflowId: number): Promise<{ overlap: number; configXml: string | null; key: string } | null> {
  const row = await db
    .selectFrom('workflows as w')
    .leftJoin('labelingConfigs as c', 'c.id', 'w.labelingConfigId')
    .leftJoin('agreementControls as i', (j) => j.onRef('i.workflowId', '=', 'w.id').on('i.fromName', '=', ITEM_ROW))
    .select(['w.overlap', 'c.configXml', 'i.items', 'i.agreementSum'])
    .where('w.id', '=', workflowId)
    .executeTakeFirst();
  return row ? { overlap: row.overlap, configXml: row.configXml, key: JSON.stringify([row.overlap, row.configXml, row.items, row.agreementSum]) } : null;
}

type Kept = Map<number, { key: string; report: AgreementReport & { overlap: number } }>;
/** Reports kept per database handle, by workflow, with the head they were read at (at most 64 per handle, oldest out). */
const keptReports = new WeakMap<Executor, Kept>();
const REPORTS_KEPT = 64;

/**
 * A workflow's agreement report from its rollups (cost: controls, labels and pairs, not items);
 * null for an unknown workflow. Each call reads the head (one indexed row): while no item has
 * finished since the last read through this database handle, the report read then is returned;
 * otherwise the rollups are read again, and the report is kept only when the head did not move
 * during that read, so a kept report is always the report of its head.
 */
export async function workflowAgreement(db: Executor, workflowId: number): Promise<(AgreementReport & { overlap: number }) | null> {
  let reports = keptReports.get(db);
  if (!reports) keptReports.set(db, (reports = new Map()));
  const head = await agreementHead(db, workflowId);
  if (!head) {
    reports.delete(workflowId);
    return null;
  }
  const kept = reports.get(workflowId);
  if (kept?.key === head.key) return kept.report;
  const report = await readAgreement(db, workflowId, head);
  const after = await agreementHead(db, workflowId);
  if (after?.key === head.key) {
    reports.delete(workflowId);
    reports.set(workflowId, { key: head.key, report });
    if (reports.size > REPORTS_KEPT) reports.delete(reports.keys().next().value!);
  }
  return report;
}

async function readAgreement(db: Executor, workflowId: number, wf: { overlap: number; configXml: string | null }): Promise<AgreementReport & { overlap: number }> {
  const [controls, coincidences, pairs, pairKappa, annotators] = await Promise.all([
    db.selectFrom('agreementControls').select(['fromName', 'type', 'items', 'agreementSum']).where('workflowId', '=', workflowId).execute(),
    db.selectFrom('agreementCoincidences').select(['fromName', 'valueA as a', 'valueB as b', 'o']).where('workflowId', '=', workflowId).execute(),
    db.selectFrom('agreementPairs').select(['fromName', 'annotatorA as a', 'annotatorB as b', 'items', 'similaritySum']).where('workflowId', '=', workflowId).execute(),
    // Kappa's totals per pair (kappa.ts KappaTotals) summed here from the joint label counts:
    // one row per pair leaves the database instead of one per pair and label combination.
    sql<WorkflowSums['pairKappa'][number]>`
      WITH m AS (
        -- Per pair and label: times A gave it, times B gave it, times both did.
        SELECT from_name, annotator_a, annotator_b, label, sum(na) AS na, sum(nb) AS nb, sum(same) AS same
          FROM agreement_pair_labels l
         CROSS JOIN LATERAL (VALUES (l.label_a, l.n, 0, CASE WHEN l.label_a = l.label_b THEN l.n ELSE 0 END),
                                    (l.label_b, 0, l.n, 0)) AS v (label, na, nb, same)
         WHERE l.workflow_id = ${workflowId}
         GROUP BY 1, 2, 3, 4)
      SELECT from_name, annotator_a AS a, annotator_b AS b, sum(na)::float8 AS items, sum(same)::float8 AS same, sum(na * nb)::float8 AS cross
        FROM m GROUP BY 1, 2, 3`
      .execute(db)
      .then((r) => r.rows),
    db.selectFrom('agreementAnnotators').select(['annotatorId as annotator', 'items', 'answers', 'similaritySum']).where('workflowId', '=', workflowId).execute(),
  ]);
  const sums: WorkflowSums = { controls, coincidences, pairs, pairKappa, annotators };
  return { overlap: wf.overlap, ...agreementReport(sums, controlsOf(wf.configXml, []), (t) => kindOf(t)) };
}

/** Where an item of a batch stands in its overlap workflow (GET /api/assignments/:id, each task). */
export interface TaskConsensus {
  /** The overlap workflow's item. */
  itemId: number;
  /** annotator: this task holds one of the item's seats; adjudicator: it adjudicates the item. */
  role: 'annotator' | 'adjudicator';
  /** Annotations the item needs (the workflow's overlap) and those already final (their batch completed). */
  overlap: number;
  answersIn: number;
  /** waiting: answers still missing; then the item's outcome (item_consensus.outcome). */
  status: 'waiting' | 'accepted' | 'adjudication' | 'adjudicated';
  /** Item agreement (0..1; null while waiting or with fewer than two answers) and the consensus's confidence. */
  agreement: number | null;
  confidence: number | null;
  method: string | null;
  /** Per control the item's agreement and confidence. */
  controls: { fromName: string; agreement: number | null; confidence: number }[];
  /** The item's result: the adjudicator's once adjudicated, else the consensus; null while waiting. */
  result: unknown;
  /** This task's answer vs the consensus (rollup.ts agreementWithMerged); annotator role only, once finished. */
  agreementWithConsensus: number | null;
}

/**
 * Each task of batch `assignmentId` that belongs to an overlap item, by task id: as one of its
 * annotators (the task holds a seat) or as its adjudicator (the task's item is the item's
 * adjudication item). Tasks of overlap-1 workflows, gold tasks and tasks whose seat was freed
 * (a failed or cancelled batch) are absent. Cost: one indexed read per batch, and per finished
 * item of the batch one comparison of this annotator's answer with the consensus.
 */
export async function taskConsensus(db: Executor, assignmentId: number): Promise<Map<number, TaskConsensus>> {
  const { rows } = await sql<{
    taskId: number;
    itemId: number;
    role: 'annotator' | 'adjudicator';
    overlap: number;
    answersIn: number;
    annotatorId: number;
    outcome: TaskConsensus['status'] | null;
    agreement: number | null;
    confidence: number | null;
    method: string | null;
    controls: TaskConsensus['controls'] | null;
    consensus: unknown;
    adjudicatedResult: unknown;
    answers: { annotatorId: number; skipped: boolean; result: unknown }[] | null;
    configXml: string | null;
  }>`
    WITH tasks AS (
      SELECT t.id AS task_id, s.work_item_id AS item_id, 'annotator' AS role, a.annotator_id
        FROM assignment_tasks t
        JOIN assignments a ON a.id = t.assignment_id
        JOIN work_item_seats s ON s.work_item_id = t.work_item_id AND s.assignment_id = t.assignment_id
       WHERE t.assignment_id = ${assignmentId} AND NOT t.is_gold
      UNION ALL
      SELECT t.id, c.work_item_id, 'adjudicator', a.annotator_id
        FROM assignment_tasks t
        JOIN assignments a ON a.id = t.assignment_id
        JOIN item_consensus c ON c.adjudication_item_id = t.work_item_id
       WHERE t.assignment_id = ${assignmentId} AND NOT t.is_gold)
    SELECT x.task_id, x.item_id, x.role, x.annotator_id, w.overlap,
           (SELECT count(*)::int FROM work_item_seats d WHERE d.work_item_id = x.item_id AND d.status = 'done') AS answers_in,
           c.outcome, c.agreement, c.confidence, c.method, c.controls, c.result AS consensus, c.adjudicated_result, c.answers,
           l.config_xml
      FROM tasks x
      JOIN work_items i ON i.id = x.item_id
      JOIN workflows w ON w.id = i.workflow_id
      LEFT JOIN labeling_configs l ON l.id = w.labeling_config_id
      LEFT JOIN item_consensus c ON c.work_item_id = x.item_id
     ORDER BY x.task_id`.execute(db);
  const specsByConfig = new Map<string | null, ControlSpec[]>();
  const out = new Map<number, TaskConsensus>();
  for (const r of rows) {
    let agreementWithConsensus: number | null = null;
    if (r.role === 'annotator' && r.answers && r.answers.length >= 2) {
      const results = r.answers.map((x) => x.result);
      // The config's controls (cached per config); from the answers when it does not parse.
      let specs = specsByConfig.get(r.configXml);
      if (!specs) {
        specs = controlsOf(r.configXml, results);
        if (r.configXml !== null) specsByConfig.set(r.configXml, specs);
      }
      const at = r.answers.findIndex((x) => x.annotatorId === r.annotatorId);
      if (at >= 0) {
        const merged = Array.isArray(r.consensus) ? (r.consensus as { from_name: string; value: unknown }[]) : [];
        const mine = agreementWithMerged(
          r.answers.map((x) => ({ annotator: x.annotatorId, result: x.result ?? [], skipped: x.skipped })),
          specs,
          merged,
        )[at]!;
        agreementWithConsensus = mine.answers ? mine.similaritySum / mine.answers : null;
      }
    }
    out.set(Number(r.taskId), {
      itemId: Number(r.itemId),
      role: r.role,
      overlap: r.overlap,
      answersIn: r.answersIn,
      status: r.outcome ?? 'waiting',
      agreement: r.agreement,
      confidence: r.outcome ? r.confidence : null,
      method: r.method,
      controls: r.controls ?? [],
      result: r.outcome === 'adjudicated' ? r.adjudicatedResult : r.outcome ? r.consensus : null,
      agreementWithConsensus,
    });
  }
  return out;
}
