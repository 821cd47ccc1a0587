/**
 * Quality: gold accuracy per annotator against the threshold (a chart of the lowest), who is
 * flagged or paused (with resume), recent gold evaluations and rejections. Figures are
 * GET /api/quality's (src/db/quality.ts qualityReport), so the console and the API agree.
 */
import { qualityReport } from '../../db/quality.ts';
import { flaggedOrPausedAnnotators } from '../../db/annotators.ts';
import { readQualitySettings, isBelowThreshold } from '../../workflows/quality.ts';
import { ActionButton, Chart, DataTable, Empty, percent, plural, Stat, StatusBadge, Time } from '../components.tsx';
import type { PageContext } from '../index.tsx';

/** How many annotators the accuracy chart shows (the lowest first). */
export const CHART_ANNOTATORS = 40;

export async function qualityPage(p: PageContext) {
  const { db } = p.ctx.database;
  const log = p.c.get('log');
  const [report, settings, flagged] = await Promise.all([qualityReport(db, { log }), readQualitySettings(db, log), flaggedOrPausedAnnotators(db, 200)]);
  const scored = report.annotatorScores.filter((s) => s.accuracy !== null);
  const lowest = [...scored].sort((a, b) => a.accuracy! - b.accuracy! || a.annotatorId - b.annotatorId).slice(0, CHART_ANNOTATORS);
  const below = scored.filter((s) => isBelowThreshold(s.accuracy, s.evaluationCount, settings));
  return p.render({
    title: 'Quality',
    nav: 'quality',
    topics: ['quality', 'annotators'],
    body: (
      <div id="quality" data-live-region>
        <ul class="stats">
          <Stat label="overall gold accuracy" value={percent(report.overallAccuracy)} />
          <Stat label="accuracy threshold" value={percent(report.accuracyThreshold)} link="/settings#setting-quality.accuracyThreshold" />
          <Stat label={`below threshold (≥ ${settings.minEvaluations} evaluations)`} value={report.belowThresholdCount} link="#below" tone={report.belowThresholdCount ? 'warn' : 'ok'} />
          <Stat label="rework rate (rejected ÷ reviewed)" value={percent(report.reworkRate)} />
        </ul>
        {lowest.length ? (
          <Chart
            id="chart-accuracy"
            kind="accuracy"
            caption={`Gold accuracy of the ${plural(lowest.length, 'annotator')} with the lowest, against the ${percent(report.accuracyThreshold)} threshold`}
            data={{ threshold: report.accuracyThreshold, names: lowest.map((s) => s.annotatorName), values: lowest.map((s) => s.accuracy) }}
            summary={`Lowest accuracy ${percent(lowest[0]!.accuracy)} (${lowest[0]!.annotatorName}); ${below.length} of ${scored.length} scored annotators below the threshold.`}
          />
        ) : (
          <Empty>No gold results yet: accuracy appears once annotators have annotated gold tasks.</Empty>
        )}

        <section aria-labelledby="below-h" id="below">
          <h2 id="below-h">Flagged and paused annotators</h2>
          <DataTable
            label="Flagged and paused annotators"
            rows={flagged}
            empty="Nobody is flagged or paused."
            columns={[
              { key: 'annotator', label: 'Annotator', cell: (a) => <a href={`/annotators/${a.id}`}>{a.name}</a> },
              { key: 'status', label: 'Status', cell: (a) => <StatusBadge status={a.status} /> },
              { key: 'accuracy', label: 'Accuracy', class: 'num', cell: (a) => percent(a.accuracy) },
              { key: 'evaluations', label: 'Evaluations', class: 'num', cell: (a) => a.evaluationCount },
              { key: 'flagged', label: 'Flagged', cell: (a) => (a.flagged ? <Time at={a.flaggedAt} /> : 'no') },
              {
                key: 'autoAssign',
                label: 'Auto-assignment',
                cell: (a) =>
                  a.autoAssignPaused ? (
                    <ActionButton method="PUT" url={`/api/annotators/${a.id}`} body={{ autoAssignPaused: false }} label="Resume" variant="small" of={`auto-assignment for ${a.name}`} />
                  ) : (
                    'running'
                  ),
              },
            ]}
          />
        </section>

        <div class="columns">
          <section aria-labelledby="evals-h">
            <h2 id="evals-h">Recent gold evaluations</h2>
            <DataTable
              label="Recent gold evaluations"
              rows={report.recentEvaluations}
              empty="No gold evaluations yet."
              columns={[
                { key: 'when', label: 'When', cell: (e) => <Time at={e.evaluatedAt} /> },
                { key: 'annotator', label: 'Annotator', cell: (e) => <a href={`/annotators/${e.annotatorId}`}>{e.annotatorName}</a> },
                { key: 'task', label: 'Gold task', cell: (e) => e.goldTaskName ?? '–' },
                {
                  key: 'score',
                  label: 'Score',
                  class: 'num',
                  cell: (e) => <span class={e.score < report.accuracyThreshold ? 'bad' : undefined}>{percent(e.score)}</span>,
                },
              ]}
            />
          </section>
          <section aria-labelledby="rej-h">
            <h2 id="rej-h">Recent rejections</h2>
            <DataTable
              label="Recent rejections"
              rows={report.recentRejections}
              empty="No rejections yet."
              columns={[
                { key: 'when', label: 'When', cell: (r) => <Time at={r.createdAt} /> },
                {
                  key: 'annotator',
                  label: 'Annotator',
                  cell: (r) => (r.originalAnnotatorId ? <a href={`/annotators/${r.originalAnnotatorId}`}>{r.originalAnnotatorName}</a> : '–'),
                },
                { key: 'reviewer', label: 'Reviewer', cell: (r) => r.reviewerAnnotatorName ?? '–' },
                { key: 'reason', label: 'Reason', class: 'wrap', cell: (r) => r.reason ?? '–' },
                { key: 'action', label: 'Action', cell: (r) => r.actionTaken.replaceAll('_', ' ') },
              ]}
            />
          </section>
        </div>
      </div>
    ),
  });
}
