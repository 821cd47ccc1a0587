/**
 * One process at a time on the embedded database's directory.
 *
 * PGlite takes no lock of its own (electric-sql/pglite#1106): a second process opening the same
 * directory — `fleet admin create` while `npm start` runs — succeeds, keeps its own buffers, and
 * its writes are lost or the directory is left unreadable, while it reports success. PostgreSQL
 * itself refuses a second postmaster through `postmaster.pid`; this is the same rule for PGlite.
 *
 * The lock is the file `<dir>.lock` holding the owner's process id, created exclusively. A file
 * whose process no longer runs is stale and taken over (a crash or SIGKILL leaves one behind); so
 * is one naming this very process when this process does not hold it (a container restarted with
 * the same pid). Within one process a second open of a held directory is refused as well.
 */
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';

/** The directory is held by another process (or already opened by this one). */
export class DataDirInUseError extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      `the embedded database in ${dir} is in use by ${pid === process.pid ? 'this process already' : `another process (pid ${pid}: \`npm start\` or another fleet command)`}: ` +
        `stop it first, or point DATABASE_URL at a PostgreSQL both can share (if no such process runs, delete ${dir}.lock)`,
    );
  }
}

const held = new Set<string>();

/** The pid a lock file names, or null when it is gone or unreadable. */
function readOwner(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Takes the lock on `dir` (the PGlite data directory). Out: a release function (idempotent; also
 * run at process exit). Throws DataDirInUseError when a live process holds it.
 */
export function lockDataDir(dir: string): () => void {
  const file = `${dir}.lock`;
  if (held.has(file)) throw new DataDirInUseError(dir, process.pid);
  // Written whole under a private name, then linked into place: link() fails if the lock exists,
  // and a reader never sees a lock file without its pid.
  const mine = `${file}.${process.pid}`;
  writeFileSync(mine, `${process.pid}\n`);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(mine, file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = readOwner(file);
      if ((owner !== null && owner !== process.pid && alive(owner)) || attempt >= 3) throw new DataDirInUseError(dir, owner ?? 0);
      try {
        unlinkSync(file); // stale: its process is gone
      } catch {
        // another process took the stale file over meanwhile: the next link() tells
      }
    }
  } finally {
    unlinkSync(mine);
  }
  held.add(file);
  const release = () => {
    if (!held.delete(file)) return;
    process.off('exit', release);
    try {
      if (readOwner(file) === process.pid) unlinkSync(file);
    } catch {
      // already gone
    }
  };
  process.on('exit', release);
  return release;
}
