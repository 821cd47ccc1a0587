/**
 * Gold-accuracy flagging. An annotator is below threshold when they have at least
 * `quality.minEvaluations` gold results and their accuracy — the mean score, rounded to 4
 * decimals as GET /api/quality shows it — is below `quality.accuracyThreshold`.
 *
 * Crossing below writes one container event `quality_flagged` (and, when
 * `quality.pauseBelowThreshold` is true, sets autoAssignPaused; an admin resumes with
 * PUT /api/annotators/:id {autoAssignPaused:false}). Rising back to or above the threshold writes
 * one `quality_recovered` event and re-arms the flag; it does not resume auto-assignment.
 * Checks that change nothing write nothing, so a flag is written once per crossing however often
 * the check runs.
 *
 * Two callers, so nothing depends on one: `evaluateQuality(trx, annotatorId)` right after a gold
 * result is recorded (same transaction), and the reconciler step `runQualityChecks`, which checks
 * every annotator whose gold results changed since their last check (annotator_quality.needs_check,
 * set by a trigger on gold_results) or whose check used other settings than the current ones.
 */
import type { Db, Executor, Tx } from '../db/index.ts';
import { meanAccuracy } from '../db/accuracy.ts';
import { SETTING_DEFAULTS } from '../settings.ts';
import { emitAnnotatorFlagged } from '../outbound/events.ts';

export interface QualitySettings {
  threshold: number;
  minEvaluations: number;
  pauseBelowThreshold: boolean;
}

interface SettingsLog {
  warn(obj: object, msg: string): void;
}

const QUALITY_KEYS = ['quality.accuracyThreshold', 'quality.minEvaluations', 'quality.pauseBelowThreshold'] as const;

/**
 * The quality settings, each validated: a stored value of the wrong type or out of range is
 * ignored (with a warning) in favour of the default, so a typo never breaks a webhook.
 */
export async function readQualitySettings(db: Executor, log?: SettingsLog): Promise<QualitySettings> {
  const rows = await db.selectFrom('settings').select(['key', 'value']).where('key', 'in', [...QUALITY_KEYS]).execute();
  const stored = new Map(rows.map((r) => [r.key, r.value]));
  const pick = <T>(key: (typeof QUALITY_KEYS)[number], ok: (v: unknown) => v is T, fallback: T): T => {
    if (!stored.has(key)) return fallback;
    const v = stored.get(key);
    if (ok(v)) return v;
    log?.warn({ key, value: v }, 'ignoring an invalid setting; using its default');
    return fallback;
  };
  return {
    threshold: pick(
      'quality.accuracyThreshold',
      (v): v is number => typeof v === 'number' && v >= 0 && v <= 1,
      SETTING_DEFAULTS['quality.accuracyThreshold'],
    ),
    minEvaluations: pick(
      'quality.minEvaluations',
      (v): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1_000_000,
      SETTING_DEFAULTS['quality.minEvaluations'],
    ),
    pauseBelowThreshold: pick(
      'quality.pauseBelowThreshold',
      (v): v is boolean => typeof v === 'boolean',
      SETTING_DEFAULTS['quality.pauseBelowThreshold'],
    ),
  };
}

/** Whether an accuracy (already rounded to 4 decimals) over `evaluationCount` results is below threshold. */
export function isBelowThreshold(accuracy: number | null, evaluationCount: number, s: QualitySettings): boolean {
  return accuracy !== null && evaluationCount >= s.minEvaluations && evaluationCount > 0 && accuracy < s.threshold;
}

export interface QualityCheck {
  annotatorId: number;
  /** Mean gold score rounded to 4 decimals; null without evaluations. */
  accuracy: number | null;
  evaluationCount: number;
  belowThreshold: boolean;
  /** The flag state after this check. */
  flagged: boolean;
  /** What this check changed: a new flag, a recovery, or nothing. */
  change: 'flagged' | 'recovered' | null;
  /** Whether this check paused the annotator's auto-assignment. */
  paused: boolean;
}

/**
 * Checks one annotator and records a crossing. Runs in `db`'s transaction when it is one (call it
 * in the transaction that recorded the gold result), otherwise in its own. An unknown or deleted
 * annotator is a no-op (null).
 */
export async function evaluateQuality(
  db: Executor,
  annotatorId: number,
  opts: { settings?: QualitySettings; now?: Date; log?: SettingsLog } = {},
): Promise<QualityCheck | null> {
  if (!db.isTransaction) return (db as Db).transaction().execute((trx) => evaluateQuality(trx, annotatorId, opts));
  const trx = db as Tx;
  const now = opts.now ?? new Date();
  const annotator = await trx.selectFrom('annotators').select(['status']).where('id', '=', annotatorId).executeTakeFirst();
  if (!annotator || annotator.status === 'deleted') return null;
  const settings = opts.settings ?? (await readQualitySettings(trx, opts.log));

  await trx.insertInto('annotatorQuality').values({ annotatorId }).onConflict((oc) => oc.column('annotatorId').doNothing()).execute();
  // The row lock orders concurrent checks of one annotator (and the gold_results trigger's update).
  const row = await trx
    .selectFrom('annotatorQuality')
    .select([
      'evaluationCount',
      'flagged',
      meanAccuracy('annotator_quality').as('accuracy'),
    ])
    .where('annotatorId', '=', annotatorId)
    .forUpdate()
    .executeTakeFirstOrThrow();

  const below = isBelowThreshold(row.accuracy, row.evaluationCount, settings);
  let change: QualityCheck['change'] = null;
  let paused = false;
  const details = {
    accuracy: row.accuracy,
    evaluationCount: row.evaluationCount,
    threshold: settings.threshold,
    minEvaluations: settings.minEvaluations,
  };
  if (below && !row.flagged) {
    change = 'flagged';
    paused = settings.pauseBelowThreshold;
    if (paused) {
      await trx.updateTable('annotators').set({ autoAssignPaused: true, updatedAt: now }).where('id', '=', annotatorId).execute();
    }
    await trx
      .insertInto('containerEvents')
      .values({
        annotatorId,
        eventType: 'quality_flagged',
        message:
          `Gold accuracy ${row.accuracy} over ${row.evaluationCount} evaluations is below the threshold ${settings.threshold}` +
          (paused ? '; auto-assignment paused' : ''),
        details: JSON.stringify({ ...details, autoAssignPaused: paused }),
      })
      .execute();
    await emitAnnotatorFlagged(trx, { annotatorId, ...details, autoAssignPaused: paused });
  } else if (!below && row.flagged) {
    change = 'recovered';
    await trx
      .insertInto('containerEvents')
      .values({
        annotatorId,
        eventType: 'quality_recovered',
        message: `Gold accuracy ${row.accuracy} over ${row.evaluationCount} evaluations is no longer below the threshold ${settings.threshold}`,
        details: JSON.stringify(details),
      })
      .execute();
  }

  await trx
    .updateTable('annotatorQuality')
    .set({
      needsCheck: false,
      checkedThreshold: settings.threshold,
      checkedMinEvaluations: settings.minEvaluations,
      checkedAt: now,
      flagged: below,
      ...(change === 'flagged' ? { flaggedAt: now } : change === 'recovered' ? { flaggedAt: null } : {}),
    })
    .where('annotatorId', '=', annotatorId)
    .execute();

  return {
    annotatorId,
    accuracy: row.accuracy,
    evaluationCount: row.evaluationCount,
    belowThreshold: below,
    flagged: below,
    change,
    paused,
  };
}

/** Checks per reconciler pass, at most; the rest wait for the next pass. */
export const QUALITY_CHECK_BATCH = 500;

/**
 * The reconciler step: checks every non-deleted annotator whose gold results changed since their
 * last check, or whose last check used a different threshold or minimum. Each check is its own
 * transaction; one failure is reported and the others still run.
 */
export async function runQualityChecks(
  db: Db,
  log?: SettingsLog,
): Promise<{ actions: string[]; errors: string[]; counts: Record<string, number> }> {
  const settings = await readQualitySettings(db, log);
  const due = await db
    .selectFrom('annotatorQuality as q')
    .innerJoin('annotators as a', 'a.id', 'q.annotatorId')
    .select('q.annotatorId')
    .where('a.status', '<>', 'deleted')
    .where((eb) =>
      eb.or([
        eb('q.needsCheck', '=', true),
        eb('q.checkedThreshold', 'is distinct from', settings.threshold),
        eb('q.checkedMinEvaluations', 'is distinct from', settings.minEvaluations),
      ]),
    )
    .orderBy('q.annotatorId')
    .limit(QUALITY_CHECK_BATCH)
    .execute();
  const actions: string[] = [];
  const errors: string[] = [];
  let flagged = 0;
  for (const { annotatorId } of due) {
    try {
      const check = await evaluateQuality(db, annotatorId, { settings });
      if (check?.change === 'flagged') {
        flagged++;
        actions.push(
          `annotator ${annotatorId}: flagged (gold accuracy ${check.accuracy} over ${check.evaluationCount} evaluations)` +
            (check.paused ? ', auto-assignment paused' : ''),
        );
      } else if (check?.change === 'recovered') {
        actions.push(`annotator ${annotatorId}: quality recovered (gold accuracy ${check.accuracy})`);
      }
    } catch (err) {
      errors.push(`annotator ${annotatorId}: quality check failed: ${(err as Error).message}`);
    }
  }
  return { actions, errors, counts: { qualityChecked: due.length, qualityFlagged: flagged } };
}
