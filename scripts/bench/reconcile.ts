/**
 * `npm run bench -- reconcile`: what one reconcile pass costs — statements sent, rows written and
 * wall time — over a fleet at rest (test/helpers/fleet-load.ts) of 1,000 annotators and 100 /
 * 1,000 / 10,000 open batches, in this process against PostgreSQL (statements counted with a hook
 * on node-pg, test/helpers/statements.ts). Per size: the idle pass (nothing due), and a pass with
 * 1 % of the open batches due (their compare interval elapsed; their Label Studio does not
 * answer) — what a wake-up or an elapsed compare interval makes due. Also reported: the first
 * pass (the full resync) and the passes it takes to drain what it made due. The baseline in the
 * same run is the idle pass at 100 batches: the ratios show whether cost follows the totals or
 * the due count. Targets (issue 15): idle pass < 2 s, < 100
 * statements, 0 rows written.
 */
import { sql } from 'kysely';
import { createService } from '../../src/service.ts';
import { createTestDatabase } from '../../test/helpers/db.ts';
import { freePort } from '../../test/helpers/process.ts';
import { createTestBucket } from '../../test/helpers/s3.ts';
import { testConfig, TEST_SECRET_KEY } from '../../test/helpers/service.ts';
import { seedFleetLoad } from '../../test/helpers/fleet-load.ts';
import { countStatements } from '../../test/helpers/statements.ts';
import { SecretBox } from '../../src/crypto.ts';
import { ratio } from './lib.ts';

const ANNOTATORS = 1_000;
const SIZES = [100, 1_000, 10_000];
const WORKFLOWS = 20;
const IDLE_PASSES = 5;

interface PassFigures {
  statements: number;
  rowsWritten: number;
  ms: number;
  /** What the pass wrote: rows per statement (its first 60 characters), when it wrote anything. */
  wrote?: Record<string, number>;
}

async function measure(run: () => Promise<unknown>): Promise<PassFigures> {
  const t0 = performance.now();
  const { count } = await countStatements(run);
  const figures: PassFigures = { statements: count.statements, rowsWritten: count.rowsWritten, ms: Math.round(performance.now() - t0) };
  for (const w of count.writes) {
    const [, n, text] = /^(\d+) row\(s\): (.*)$/.exec(w)!;
    const key = text!.slice(0, 60);
    figures.wrote = { ...figures.wrote, [key]: (figures.wrote?.[key] ?? 0) + Number(n) };
  }
  return figures;
}

const median = (xs: PassFigures[]): PassFigures => {
  const by = (k: 'statements' | 'rowsWritten' | 'ms') => [...xs].map((x) => x[k]).sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { statements: by('statements'), rowsWritten: by('rowsWritten'), ms: by('ms') };
};

async function size(batches: number, s3: Awaited<ReturnType<typeof createTestBucket>>) {
  const database = await createTestDatabase();
  try {
    const config = testConfig({
      DATABASE_URL: database.url,
      FLEET_NAMESPACE: `benchrec${process.pid % 100000}`,
      ...s3.env,
    });
    const secrets = new SecretBox(TEST_SECRET_KEY);
    const service = await createService(config, { database: database.handle, secrets });
    await seedFleetLoad(database.handle.db, secrets, {
      annotators: ANNOTATORS,
      batches,
      workflows: WORKFLOWS,
      bucket: s3.bucket,
      deadPort: await freePort(),
    });
    const pass = async () => {
      const r = await service.reconciler.runOnce({ wait: true });
      if (r === 'busy') throw new Error('pass lock busy');
      return r;
    };
    // The first pass is the full resync; the next ones drain what it and seeding left due (new
    // rows are due once, at most CLAIM_LIMIT per kind per pass); then the fleet is at rest.
    const firstPass = await measure(pass);
    const drain = { passes: 1, statements: firstPass.statements, ms: firstPass.ms };
    for (let last = firstPass; last.rowsWritten > 0 && drain.passes < 60; drain.passes++) {
      last = await measure(pass);
      drain.statements += last.statements;
      drain.ms += last.ms;
    }
    const idle: PassFigures[] = [];
    for (let i = 0; i < IDLE_PASSES; i++) idle.push(await measure(pass));
    // 1 % of the open batches fall due: their compare interval elapsed (their Label Studio is down).
    const dueCount = Math.max(1, Math.round(batches / 100));
    await sql`UPDATE assignments SET ls_checked_at = now() - interval '1 day', due_at = now()
               WHERE id IN (SELECT id FROM assignments WHERE status = 'in_progress' ORDER BY id LIMIT ${dueCount})`.execute(database.handle.db);
    const due = await measure(pass);
    const after = await measure(pass);
    await service.reconciler.stop();
    return { batches, annotators: ANNOTATORS, firstPass, resyncDrained: drain, idle: median(idle), due: { ...due, batchesDue: dueCount }, idleAfterDue: after };
  } finally {
    await database.drop();
  }
}

export default async function bench() {
  const s3 = await createTestBucket('lf-bench-reconcile');
  const results = [];
  for (const n of SIZES) results.push(await size(n, s3));
  const base = results[0]!.idle;
  return {
    targets: { idlePassMs: 2000, idlePassStatements: 100, idlePassRowsWritten: 0 },
    baseline: { name: 'idle pass, 100 open batches, same run', ...base },
    sizes: results.map((r) => ({
      ...r,
      idleStatementsRatio: ratio(r.idle.statements, base.statements),
      idleMsRatio: ratio(r.idle.ms, base.ms),
      dueStatementsRatioToIdle: ratio(r.due.statements, r.idle.statements),
    })),
  };
}
