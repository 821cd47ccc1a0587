/**
 * Quality: gold accuracy per annotator against the threshold (a chart of the lowest), who is
 * flagged or paused (with resume), recent gold evaluations and rejections. Figures are
 * GET /api/quality's (src/api/quality.ts qualityReport), so the console and the API agree.
 */
import { qualityReport } from '../../api/quality.ts';
import { flaggedOrPausedAnnotators } from '../../db/annotators.ts';
import { readQualitySettings, isBelowThreshold } from '../../workflows/quality.ts';
import { ActionButton, Chart, Empty, percent, plural, Stat, StatusBadge, TableWrap, Time } from '../components.tsx';
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
          {flagged.length ? (
            <TableWrap label="Flagged and paused annotators">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Annotator</th>
                    <th scope="col">Status</th>
                    <th scope="col" class="num">
                      Accuracy
                    </th>
                    <th scope="col" class="num">
                      Evaluations
                    </th>
                    <th scope="col">Flagged</th>
                    <th scope="col">Auto-assignment</th>
                  </tr>
                </thead>
                <tbody>
                  {flagged.map((a) => (
                    <tr>
                      <td>
                        <a href={`/annotators/${a.id}`}>{a.name}</a>
                      </td>
                      <td>
                        <StatusBadge status={a.status} />
                      </td>
                      <td class="num">{percent(a.accuracy)}</td>
                      <td class="num">{a.evaluationCount}</td>
                      <td>{a.flagged ? <Time at={a.flaggedAt} /> : 'no'}</td>
                      <td>
                        {a.autoAssignPaused ? (
                          <ActionButton method="PUT" url={`/api/annotators/${a.id}`} body={{ autoAssignPaused: false }} label="Resume" variant="small" accessibleLabel={`Resume auto-assignment for ${a.name}`} />
                        ) : (
                          'running'
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          ) : (
            <Empty>Nobody is flagged or paused.</Empty>
          )}
        </section>

        <div class="columns">
          <section aria-labelledby="evals-h">
            <h2 id="evals-h">Recent gold evaluations</h2>
            {report.recentEvaluations.length ? (
              <TableWrap label="Recent gold evaluations">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Annotator</th>
                      <th scope="col">Gold task</th>
                      <th scope="col" class="num">
                        Score
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {report.recentEvaluations.map((e) => (
                      <tr>
                        <td>
                          <Time at={e.evaluatedAt} />
                        </td>
                        <td>
                          <a href={`/annotators/${e.annotatorId}`}>{e.annotatorName}</a>
                        </td>
                        <td>{e.goldTaskName ?? '–'}</td>
                        <td class={`num ${e.score < report.accuracyThreshold ? 'bad' : ''}`}>{percent(e.score)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            ) : (
              <Empty>No gold evaluations yet.</Empty>
            )}
          </section>
          <section aria-labelledby="rej-h">
            <h2 id="rej-h">Recent rejections</h2>
            {report.recentRejections.length ? (
              <TableWrap label="Recent rejections">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Annotator</th>
                      <th scope="col">Reviewer</th>
                      <th scope="col">Reason</th>
                      <th scope="col">Action</th>
                    </tr>
                  </thead>
                  <tbody>
                    {report.recentRejections.map((r) => (
                      <tr>
                        <td>
                          <Time at={r.createdAt} />
                        </td>
                        <td>{r.originalAnnotatorId ? <a href={`/annotators/${r.originalAnnotatorId}`}>{r.originalAnnotatorName}</a> : '–'}</td>
                        <td>{r.reviewerAnnotatorName ?? '–'}</td>
                        <td class="wrap">{r.reason ?? '–'}</td>
                        <td>{r.actionTaken.replaceAll('_', ' ')}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            ) : (
              <Empty>No rejections yet.</Empty>
            )}
          </section>
        </div>
      </div>
    ),
  });
}
