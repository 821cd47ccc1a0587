/** Settings the tests use: the environment first, then `.env.test` written by `npm run env:up`. */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ENV_FILE = fileURLToPath(new URL('../../.env.test', import.meta.url));

function readEnvFile(): Record<string, string> {
  if (!existsSync(ENV_FILE)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(ENV_FILE, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return out;
}

const fileEnv = readEnvFile();

export function testEnv(key: string, fallback?: string): string {
  const value = process.env[key] ?? fileEnv[key] ?? fallback;
  if (value === undefined) {
    throw new Error(`${key} is not set: run \`npm run env:up\` (writes .env.test) or export it`);
  }
  return value;
}

export const TEST_DATABASE_URL = () => testEnv('TEST_DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/test');
