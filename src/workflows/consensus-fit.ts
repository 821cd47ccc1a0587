/**
 * Dawid–Skene fits for the per-item consensus (issue 13; migrations/0027_consensus_fits.sql).
 *
 * Dawid–Skene's EM needs every answer of a workflow at once (seconds at 100,000 items × 3), so
 * the transaction that finishes an item cannot run it. This reconciler step fits it now and then
 * and stores the result; each item finishing afterwards gets one E-step on the stored fit
 * (consensus.ts → choiceOnFit, O(answers × labels)).
 *
 * When. Per overlap workflow and single-choice control, once the control's scored items (items with
 * two or more answers that answered it: agreement_controls.items, kept as items finish) reach
 * 10 × 2 (the least Dawid–Skene's threshold can be, K ≥ 2) and have grown by 10 % since the last
 * fit or check (consensus_fits.items_fitted). Geometric growth keeps the amortised cost per item
 * constant: the fits up to n items read at most n(1 + 1/0.1) item rows in all. The step then loads
 * the control's answers (item_consensus, by workflow), and fits when dawidSkenePlan says there is
 * enough (10 × K shared items; own matrices from 10 × K answers, else pooled), starting from the
 * annotators' gold accuracy (annotator_quality, the GET /api/quality figure). Below the threshold,
 * or for a multi-choice control, the row is written with no fit: the majority vote stays and the
 * next check waits for 10 % more items.
 *
 * Idle pass: one statement over agreement_controls (one row per workflow and control, never per
 * item) joined to consensus_fits by primary key; no writes.
 *
 * Items already settled are not re-settled: they may have flowed downstream or to adjudication
 * with the consensus they had, and changing that afterwards is not cheap nor expected. The fit
 * applies to items finishing after it is stored.
 */
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import type { Db } from '../db/index.ts';
import { meanAccuracy } from '../db/accuracy.ts';
import { fitChoices } from '../domain/agreement/consensus.ts';
import { controlValues } from '../domain/agreement/controls.ts';
import { MIN_SHARED_ITEMS_PER_CLASS, type Answer } from '../domain/agreement/dawid-skene.ts';
import { NO_LABEL } from '../domain/agreement/workflow.ts';
import { resultsByControl, strings } from '../domain/gold-scoring.ts';
import { controlsOf } from './consensus.ts';

/** Growth of the scored items since the last fit that triggers the next one (10 %). */
export const REFIT_GROWTH = 1.1;
/** The fewest scored items worth a check: Dawid–Skene's threshold with the fewest classes (K = 2). */
export const MIN_ITEMS_TO_FIT = MIN_SHARED_ITEMS_PER_CLASS * 2;

interface Due {
  workflowId: number;
  fromName: string;
  items: number;
}

/** The reconciler step: fits the controls that are due and stores the fits. One line per control. */
export async function fitConsensus(ctx: AppContext): Promise<{ actions: string[]; errors: string[]; counts: Record<string, number> }> {
  const db = ctx.database.db;
  // items * 10 >= items_fitted * 11: integer form of items ≥ REFIT_GROWTH × items_fitted.
  const { rows: due } = await sql<Due>`
    SELECT c.workflow_id, c.from_name, c.items
      FROM agreement_controls c
      LEFT JOIN consensus_fits f ON f.workflow_id = c.workflow_id AND f.from_name = c.from_name
     WHERE c.type = 'choices' AND c.items >= ${MIN_ITEMS_TO_FIT}
       AND (f.items_fitted IS NULL OR c.items * 10 >= f.items_fitted * ${Math.round(REFIT_GROWTH * 10)})
     ORDER BY c.workflow_id, c.from_name`.execute(db);
  const actions: string[] = [];
  const errors: string[] = [];
  let fitted = 0;
  for (const d of due) {
    try {
      const r = await fitControl(db, d);
      if (r.fit) fitted++;
      actions.push(`workflow ${d.workflowId}, control ${d.fromName}: ${r.message}`);
    } catch (err) {
      errors.push(`workflow ${d.workflowId}, control ${d.fromName}: Dawid–Skene fit failed: ${(err as Error).message}`);
    }
  }
  return { actions, errors, counts: due.length ? { consensusChecked: due.length, consensusFitted: fitted } : {} };
}

async function fitControl(db: Db, d: Due): Promise<{ fit: boolean; message: string }> {
  const workflow = await db
    .selectFrom('workflows as w')
    .leftJoin('labelingConfigs as c', 'c.id', 'w.labelingConfigId')
    .select(['c.configXml'])
    .where('w.id', '=', d.workflowId)
    .executeTakeFirst();
  const rows = await db.selectFrom('itemConsensus').select(['workItemId', 'answers']).where('workflowId', '=', d.workflowId).orderBy('workItemId').execute();
  type Stored = { annotatorId: number; skipped: boolean; result: unknown };
  const items = rows.map((r) => ({ item: Number(r.workItemId), answers: (r.answers as Stored[]) ?? [] }));
  const spec = controlsOf(workflow?.configXml ?? null, items.flatMap((i) => i.answers.map((a) => a.result))).find((s) => s.fromName === d.fromName);

  let fit: ReturnType<typeof fitChoices> = null;
  let why = 'not a single-choice control: majority per label stays';
  if (spec?.kind === 'single-choice') {
    const labels: Answer<string>[] = [];
    for (const it of items) {
      const values = it.answers.map((a) => controlValues(resultsByControl(a.skipped ? [] : a.result), spec));
      // As the rollups count: items where at least one answer answered the control.
      if (!values.some((v) => v.length)) continue;
      values.forEach((v, j) => labels.push({ item: it.item, annotator: it.answers[j]!.annotatorId, label: strings(v[0]?.choices)[0] ?? NO_LABEL }));
    }
    const annotators = [...new Set(labels.map((l) => Number(l.annotator)))];
    const gold = annotators.length
      ? await db.selectFrom('annotatorQuality').select(['annotatorId', meanAccuracy('annotator_quality').as('accuracy')]).where('annotatorId', 'in', annotators).execute()
      : [];
    const goldAccuracy = new Map(gold.filter((g) => g.accuracy !== null).map((g) => [Number(g.annotatorId), g.accuracy!]));
    fit = labels.length ? fitChoices(labels, { goldAccuracy, noLabel: NO_LABEL }) : null;
    why = 'too little overlap for Dawid–Skene: majority vote stays';
  }
  await db
    .insertInto('consensusFits')
    .values({
      workflowId: d.workflowId,
      fromName: d.fromName,
      itemsFitted: d.items,
      fit: fit ? JSON.stringify(fit.fit) : null,
      iterations: fit?.iterations ?? null,
    })
    .onConflict((oc) =>
      oc.columns(['workflowId', 'fromName']).doUpdateSet((eb) => ({
        itemsFitted: eb.ref('excluded.itemsFitted'),
        fit: eb.ref('excluded.fit'),
        iterations: eb.ref('excluded.iterations'),
        fittedAt: new Date(),
      })),
    )
    .execute();
  return fit
    ? { fit: true, message: `Dawid–Skene fitted on ${d.items} scored items (${fit.fit.classes.length} labels, ${fit.iterations} iterations); items finishing from now on use it` }
    : { fit: false, message: `${d.items} scored items, ${why}` };
}
