/**
 * Routes as Traefik file-provider dynamic configuration: one file `<instance name>.yml` per
 * annotator in TRAEFIK_DYNAMIC_DIR (watched by Traefik). Each file is written atomically — a temp
 * file in the same directory, fsync'ed, then rename(2) — so Traefik never reads half a file; temp
 * files end in `.tmp`, an extension Traefik's file provider ignores. The content is JSON, which is
 * valid YAML, so no YAML library is needed at run time.
 *
 * Ownership: with an owner set, each file starts with the YAML comment line
 * `# labelfleet installation=<id> annotator=<n>` (orchestrator/ownership.ts). Files marked by
 * another installation sharing the directory are never listed, rewritten or removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { hostRule } from './docker-labels.ts';
import { ForeignResourceError, foreignMessage, isOurs, markedInstallation, markText, type Owner } from '../ownership.ts';
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
  let owner: Owner | undefined;
  const contentOf = (t: RouteTarget) =>
    `${owner ? `# ${markText(owner, t.annotatorId)}\n` : ''}${JSON.stringify(routeDocument(t, opts.entrypoint), null, 2)}\n`;
  const ours = (content: string) => isOurs(owner, markedInstallation(content.split('\n', 1)[0]));
  return {
    kind: 'file',
    containerLabels: () => ({}),
    setOwner(o) {
      owner = o;
    },
    async ensure(t) {
      await mkdir(opts.dir, { recursive: true });
      const file = fileOf(t.name);
      const current = await readOrNull(file);
      if (current !== null && !ours(current)) {
        throw new ForeignResourceError(
          foreignMessage(`route file ${file}`, markedInstallation(current.split('\n', 1)[0]), 'Give each fleet sharing TRAEFIK_DYNAMIC_DIR its own FLEET_NAMESPACE.'),
        );
      }
      await writeAtomic(file, contentOf(t));
    },
    async state(t) {
      const current = await readOrNull(fileOf(t.name));
      if (current === null) return 'missing';
      return current === contentOf(t) ? 'ok' : 'changed';
    },
    async remove(name) {
      const current = await readOrNull(fileOf(name));
      if (current === null || !ours(current)) return;
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
        if (annotatorId === null) continue;
        const content = owner ? await readOrNull(path.join(opts.dir, entry)) : '';
        if (content !== null && ours(content)) out.push({ annotatorId, name });
      }
      return out;
    },
  };
}
