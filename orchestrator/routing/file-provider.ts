/**
 * Routes as Traefik file-provider dynamic configuration: one file `<instance name>.yml` per
 * annotator in TRAEFIK_DYNAMIC_DIR (watched by Traefik). Each file is written atomically — a temp
 * file in the same directory, fsync'ed, then rename(2) — so Traefik never reads half a file; temp
 * files end in `.tmp`, an extension Traefik's file provider ignores. The content is JSON, which is
 * valid YAML, so no YAML library is needed at run time.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { hostRule } from './docker-labels.ts';
import type { RouteProvider, RouteTarget } from './types.ts';

export function routeDocument(t: RouteTarget, entrypoint: string) {
  return {
    http: {
      routers: {
        [t.name]: { rule: hostRule(t.host), entryPoints: [entrypoint], service: t.name },
      },
      services: {
        [t.name]: { loadBalancer: { servers: [{ url: `http://${t.upstream.host}:${t.upstream.port}` }] } },
      },
    },
  };
}

async function readOrNull(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Writes `content` to `file` atomically (temp file + fsync + rename); no-op when already equal. */
export async function writeAtomic(file: string, content: string): Promise<boolean> {
  if ((await readOrNull(file)) === content) return false;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  return true;
}

export function fileRoutes(opts: {
  dir: string;
  entrypoint: string;
  /** Maps a file stem back to its annotator id (null: not one of this fleet's routes). */
  parseName: (name: string) => number | null;
}): RouteProvider {
  const fileOf = (name: string) => path.join(opts.dir, `${name}.yml`);
  const contentOf = (t: RouteTarget) => `${JSON.stringify(routeDocument(t, opts.entrypoint), null, 2)}\n`;
  return {
    kind: 'file',
    containerLabels: () => ({}),
    async ensure(t) {
      await mkdir(opts.dir, { recursive: true });
      await writeAtomic(fileOf(t.name), contentOf(t));
    },
    async state(t) {
      const current = await readOrNull(fileOf(t.name));
      if (current === null) return 'missing';
      return current === contentOf(t) ? 'ok' : 'changed';
    },
    async remove(name) {
      try {
        await unlink(fileOf(name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    },
    async list() {
      let entries: string[];
      try {
        entries = await readdir(opts.dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
      const out: Array<{ annotatorId: number; name: string }> = [];
      for (const entry of entries) {
        if (!entry.endsWith('.yml')) continue;
        const name = entry.slice(0, -4);
        const annotatorId = opts.parseName(name);
        if (annotatorId !== null) out.push({ annotatorId, name });
      }
      return out;
    },
  };
}
