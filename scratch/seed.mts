import { createTestDatabase } from '../test/helpers/db.ts';
import { seed } from '../scripts/bench/monitoring.ts';
const d = await createTestDatabase();
console.log(d.name, d.url);
const t = performance.now();
await seed(d.handle.db);
console.log('seeded', (performance.now() - t) / 1000);
await d.handle.close();
