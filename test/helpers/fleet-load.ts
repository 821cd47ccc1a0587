/**
 * A fleet at rest, written straight to the database for the reconcile tests and
 * `npm run bench -- reconcile`: `annotators` annotators (nine in ten active with a Label Studio
 * address where nothing listens, one in ten stopped), `batches` open batches spread over them
 * (in progress and compared with Label Studio just now for active annotators, pending for
 * stopped ones — a pending batch waits for its annotator), `workflows` root workflows whose
 * catalogs were synced just now and have no queued work, so idle annotators find nothing to do.
 * Everything a pass could do has been done: a pass over this fleet is idle.
 */
import { sql } from 'kysely';
import type { Db } from '../../src/db/index.ts';
import type { SecretBox } from '../../src/crypto.ts';
import { sourcePrefix } from '../../src/storage/s3.ts';

export interface FleetLoad {
  annotators: number;
  batches: number;
  workflows: number;
  /** The fleet's S3 bucket (catalog_syncs rows name it, so no full listing is due). */
  bucket: string;
  /** A loopback port where nothing listens (the annotators' Label Studio address). */
  deadPort: number;
  /** Names rows (emails, subdomains, workflow names), so one database can take several loads. */
  tag?: string;
}

export async function seedFleetLoad(db: Db, secrets: SecretBox, load: FleetLoad): Promise<void> {
  const token = secrets.encrypt('bench-token');
  const tag = load.tag ?? 'load';
  const role = await db.insertInto('roles').values({ name: `${tag}-${Date.now()}` }).returning('id').executeTakeFirstOrThrow();
  const config = await db
    .insertInto('labelingConfigs')
    .values({ name: `${tag}-${Date.now()}`, configXml: '<View><Image name="image" value="$image"/><Choices name="c" toName="image"><Choice value="a"/></Choices></View>' })
    .returning('id')
    .executeTakeFirstOrThrow();
  const { rows: wfs } = await sql<{ id: number; path: string }>`
    INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path, is_active)
    SELECT ${tag}::text || ' ' || g, ${role.id}, ${config.id}, ${tag}::text || '-' || g || '/', ${tag}::text || '-out-' || g || '/', true
      FROM generate_series(1, ${load.workflows}) g
    RETURNING id, s3_source_path AS path`.execute(db);
  for (const wf of wfs) {
    await sql`INSERT INTO catalog_syncs (workflow_id, bucket, prefix, last_sync_at, last_full_sync_at, updated_at)
      VALUES (${wf.id}, ${load.bucket}, ${sourcePrefix(wf.path)}, now(), now(), now())`.execute(db);
  }
  await sql`
    INSERT INTO annotators (name, email, subdomain, role_id, status, container_ip, container_port, api_token_enc)
    SELECT ${tag}::text || ' ' || g, ${tag}::text || '-' || g || '@bench.local', ${tag}::text || '-' || g, ${role.id},
           CASE WHEN g % 10 = 0 THEN 'stopped' ELSE 'active' END, '127.0.0.1', ${load.deadPort}, ${token}
      FROM generate_series(1, ${load.annotators}) g`.execute(db);
  const { rows: ids } = await sql<{ min: number }>`SELECT min(id)::int AS min FROM annotators WHERE email LIKE ${tag + '-%@bench.local'}`.execute(db);
  const first = ids[0]!.min;
  const firstWf = wfs[0]!.id;
  await sql`
    INSERT INTO assignments (workflow_id, annotator_id, status, task_count, completed_count, ls_project_id,
                             webhook_generation, ls_checked_at, started_at)
    SELECT ${firstWf} + g % ${load.workflows}, n.id,
           CASE WHEN n.status = 'active' THEN 'in_progress' ELSE 'pending' END, 10, 0,
           CASE WHEN n.status = 'active' THEN g END, 0,
           CASE WHEN n.status = 'active' THEN now() END, now()
      FROM generate_series(0, ${load.batches - 1}) g
      JOIN annotators n ON n.id = ${first} + g % ${load.annotators}`.execute(db);
  await sql`ANALYZE`.execute(db);
}
