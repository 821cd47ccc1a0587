/** Admin accounts: the first one from ADMIN_EMAIL/ADMIN_PASSWORD, more through `fleet admin`. */
import { sql } from 'kysely';
import { DEFAULT_ADMIN_PASSWORD } from '../config.ts';
import { hashPassword } from '../crypto.ts';
import type { Db } from '../db/index.ts';
import type { Logger } from '../logger.ts';

export async function findAdminByEmail(db: Db, email: string) {
  return db
    .selectFrom('adminUsers')
    .selectAll()
    .where(sql`lower(email)`, '=', email.toLowerCase())
    .executeTakeFirst();
}

/** Creates the admin or, when the email exists, sets its password. Returns whether it was created. */
export async function upsertAdmin(db: Db, email: string, password: string): Promise<'created' | 'updated'> {
  const passwordHash = await hashPassword(password);
  const existing = await findAdminByEmail(db, email);
  if (existing) {
    await db.updateTable('adminUsers').set({ passwordHash, updatedAt: new Date() }).where('id', '=', existing.id).execute();
    return 'updated';
  }
  await db.insertInto('adminUsers').values({ email, passwordHash }).execute();
  return 'created';
}

/** On a database with no admin, creates the first from the configured credentials. */
export async function ensureFirstAdmin(db: Db, email: string, password: string, log: Logger): Promise<void> {
  const any = await db.selectFrom('adminUsers').select('id').limit(1).executeTakeFirst();
  if (any) return;
  await upsertAdmin(db, email, password);
  if (password === DEFAULT_ADMIN_PASSWORD) {
    log.warn(
      { email },
      '!!! The first admin was created with the DEFAULT PASSWORD "admin" (it signs in only from this machine). Set ADMIN_PASSWORD, or run `fleet admin passwd`, before exposing this service. !!!',
    );
  } else {
    log.info({ email }, 'created the first admin from ADMIN_EMAIL');
  }
}
