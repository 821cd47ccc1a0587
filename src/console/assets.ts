/**
 * The console's JavaScript and CSS, bundled from the repository and node_modules (so pinned by
 * package-lock.json) by esbuild, in memory, the first time a page asks for them — the same path
 * under `npm start`, `npx fleet serve` and the tests, with nothing to forget to build and nothing
 * fetched from a CDN. Files are named by content hash and served gzip-compressed with an immutable
 * cache lifetime; code split by esbuild (the chart library is a chunk only chart pages load).
 *
 * Entry points: src/console/client/main.ts (every page) and src/console/client/console.css.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { PROJECT_ROOT } from '../paths.ts';

export interface Asset {
  body: Uint8Array;
  gzip: Uint8Array;
  type: string;
  etag: string;
}

export interface AssetBundle {
  /** URL paths of the two files a page links: the entry script and the stylesheet. */
  script: string;
  style: string;
  files: Map<string, Asset>;
}

/** Where the assets are served: /console/assets/<name>-<hash>.<ext>. */
export const ASSET_PREFIX = '/console/assets/';

const CLIENT_DIR = path.join(PROJECT_ROOT, 'src', 'console', 'client');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

let building: Promise<AssetBundle> | null = null;

/** Bundles once per process; later calls share the result. A failed build is retried next call. */
export function consoleAssets(): Promise<AssetBundle> {
  building ??= build().catch((err) => {
    building = null;
    throw err;
  });
  return building;
}

async function build(): Promise<AssetBundle> {
  const esbuild = await import('esbuild');
  try {
    const result = await esbuild.build({
      entryPoints: { app: path.join(CLIENT_DIR, 'main.ts'), console: path.join(CLIENT_DIR, 'console.css') },
      absWorkingDir: PROJECT_ROOT,
      bundle: true,
      splitting: true,
      format: 'esm',
      minify: true,
      target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
      entryNames: '[name]-[hash]',
      chunkNames: '[name]-[hash]',
      assetNames: '[name]-[hash]',
      outdir: '/console-assets',
      write: false,
      legalComments: 'none',
      logLevel: 'silent',
    });
    const files = new Map<string, Asset>();
    let script = '';
    let style = '';
    for (const out of result.outputFiles) {
      const name = path.basename(out.path);
      const ext = path.extname(name);
      files.set(name, {
        body: out.contents,
        gzip: gzipSync(out.contents, { level: 9 }),
        type: TYPES[ext] ?? 'application/octet-stream',
        etag: `"${createHash('sha256').update(out.contents).digest('base64url').slice(0, 22)}"`,
      });
      if (name.startsWith('app-') && ext === '.js') script = ASSET_PREFIX + name;
      if (name.startsWith('console-') && ext === '.css') style = ASSET_PREFIX + name;
    }
    if (!script || !style) throw new Error('console assets: the bundle lacks its entry script or stylesheet');
    return { script, style, files };
  } finally {
    // The bundler's helper process is needed once; let it go.
    await esbuild.stop();
  }
}
