/**
 * S3 for batches: list source prefixes (with continuation, and StartAfter for incremental catalog
 * syncs), put exports, read, copy to the rejection archive, and presigned GET URLs that a Label
 * Studio page can load. Any S3-compatible endpoint works: S3_ENDPOINT plus path-style addressing
 * (S3_FORCE_PATH_STYLE, default true) — moto in tests. Credentials come from the AWS SDK's default
 * chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile, instance role, ...).
 */
import { createHash, createHmac } from 'node:crypto';
import {
  CopyObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { Config } from '../config.ts';
import type { Executor } from '../db/index.ts';
import { getSetting } from '../settings.ts';

export interface S3Object {
  key: string;
  size: number;
  etag?: string;
}

export interface ListPage {
  objects: S3Object[];
  /** Pass back as `continuationToken` for the next page; undefined on the last page. */
  nextToken?: string;
}

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export type S3Settings = Pick<Config, 'S3_ENDPOINT' | 'S3_FORCE_PATH_STYLE' | 'AWS_REGION'>;

const clients = new Map<string, Storage>();

/** One Storage per endpoint configuration (the SDK client keeps its connection pool). */
export function storageFor(config: S3Settings): Storage {
  const key = `${config.S3_ENDPOINT ?? ''}|${config.S3_FORCE_PATH_STYLE}|${config.AWS_REGION}`;
  let s = clients.get(key);
  if (!s) {
    s = new Storage(config);
    clients.set(key, s);
  }
  return s;
}

/** The fleet's bucket: the `s3.bucket` setting, else S3_BUCKET. Throws when neither is set. */
export async function fleetBucket(db: Executor, config: Pick<Config, 'S3_BUCKET'>): Promise<string> {
  const bucket = (await getSetting(db, 's3.bucket')) ?? config.S3_BUCKET;
  if (typeof bucket !== 'string' || !bucket) {
    throw new Error('no S3 bucket configured: set the s3.bucket setting or S3_BUCKET');
  }
  return bucket;
}

const isNotFound = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
};

export class Storage {
  readonly client: S3Client;
  readonly #endpoint: string | undefined;
  readonly #pathStyle: boolean;
  readonly #region: string;

  constructor(config: S3Settings) {
    this.#endpoint = config.S3_ENDPOINT?.replace(/\/+$/, '');
    this.#pathStyle = config.S3_FORCE_PATH_STYLE;
    this.#region = config.AWS_REGION;
    this.client = new S3Client({
      region: config.AWS_REGION,
      endpoint: this.#endpoint,
      forcePathStyle: config.S3_FORCE_PATH_STYLE,
      // Only send/validate checksums when an operation requires them: S3-compatible endpoints
      // (older MinIO, moto) reject or ignore the newer default CRC headers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }

  /** One page of keys under `prefix`, in S3's (UTF-8 binary) key order. */
  async listPage(
    bucket: string,
    prefix: string,
    opts: { startAfter?: string; continuationToken?: string; maxKeys?: number } = {},
  ): Promise<ListPage> {
    const res = await this.client.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix || undefined,
        StartAfter: opts.continuationToken ? undefined : opts.startAfter || undefined,
        ContinuationToken: opts.continuationToken,
        MaxKeys: opts.maxKeys ?? 1000,
      }),
    );
    return {
      objects: (res.Contents ?? []).flatMap((o) =>
        o.Key ? [{ key: o.Key, size: o.Size ?? 0, etag: o.ETag?.replace(/"/g, '') }] : [],
      ),
      nextToken: res.IsTruncated ? res.NextContinuationToken : undefined,
    };
  }

  /** Every key under `prefix` (after `startAfter`), page by page. */
  async *list(bucket: string, prefix: string, opts: { startAfter?: string; pageSize?: number } = {}): AsyncGenerator<S3Object[]> {
    let token: string | undefined;
    do {
      const page = await this.listPage(bucket, prefix, {
        startAfter: opts.startAfter,
        continuationToken: token,
        maxKeys: opts.pageSize,
      });
      if (page.objects.length) yield page.objects;
      token = page.nextToken;
    } while (token);
  }

  async put(bucket: string, key: string, body: string | Uint8Array, opts: { contentType?: string; metadata?: Record<string, string> } = {}) {
    await this.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: opts.contentType ?? 'application/octet-stream',
        Metadata: opts.metadata,
      }),
    );
  }

  /** The object's bytes, or null when it does not exist. */
  async get(bucket: string, key: string): Promise<Buffer | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** The object's user metadata, or null when it does not exist. */
  async head(bucket: string, key: string): Promise<{ size: number; metadata: Record<string, string> } | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: res.ContentLength ?? 0, metadata: res.Metadata ?? {} };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async copy(source: { bucket: string; key: string }, target: { bucket: string; key: string }) {
    await this.client.send(
      new CopyObjectCommand({
        Bucket: target.bucket,
        Key: target.key,
        CopySource: `${source.bucket}/${source.key.split('/').map(encodeURIComponent).join('/')}`,
      }),
    );
  }

  /** The base URL objects are addressed under (path-style or virtual-hosted). */
  objectUrl(bucket: string, key: string): URL {
    const encodedKey = key.split('/').map(uriEncode).join('/');
    if (this.#endpoint) {
      const base = new URL(this.#endpoint);
      if (this.#pathStyle) return new URL(`${base.origin}${base.pathname.replace(/\/$/, '')}/${bucket}/${encodedKey}`);
      return new URL(`${base.protocol}//${bucket}.${base.host}/${encodedKey}`);
    }
    const host = this.#region === 'us-east-1' ? 's3.amazonaws.com' : `s3.${this.#region}.amazonaws.com`;
    return this.#pathStyle ? new URL(`https://${host}/${bucket}/${encodedKey}`) : new URL(`https://${bucket}.${host}/${encodedKey}`);
  }

  /** A presigned GET URL (SigV4 query signing), valid for `expiresInSeconds` (≤ 7 days). */
  async presignGet(bucket: string, key: string, expiresInSeconds: number): Promise<string> {
    const credentials = await this.client.config.credentials();
    return presignUrl({
      url: this.objectUrl(bucket, key),
      region: this.#region,
      credentials,
      expiresInSeconds,
    });
  }
}

/** RFC 3986 encoding as SigV4 wants it (unreserved characters kept, everything else %XX). */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
const sha256hex = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex');

export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/**
 * Presigns a GET of `url` (already addressed and path-encoded) with AWS Signature Version 4 in
 * the query string, UNSIGNED-PAYLOAD, signing only the host header — what S3 expects of a
 * presigned URL. Checked against AWS's published example in test/unit/s3-presign.test.ts.
 */
export function presignUrl(opts: {
  url: URL;
  region: string;
  credentials: Credentials;
  expiresInSeconds: number;
  now?: Date;
}): string {
  const now = opts.now ?? new Date();
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const scope = `${day}/${opts.region}/s3/aws4_request`;
  const expires = Math.max(1, Math.min(MAX_PRESIGN_SECONDS, Math.floor(opts.expiresInSeconds)));
  const query: [string, string][] = [
    ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
    ['X-Amz-Credential', `${opts.credentials.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(expires)],
    ['X-Amz-SignedHeaders', 'host'],
  ];
  if (opts.credentials.sessionToken) query.push(['X-Amz-Security-Token', opts.credentials.sessionToken]);
  const canonicalQuery = query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = ['GET', opts.url.pathname, canonicalQuery, `host:${opts.url.host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonicalRequest)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${opts.credentials.secretAccessKey}`, day), opts.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', signingKey).update(stringToSign, 'utf8').digest('hex');
  return `${opts.url.origin}${opts.url.pathname}?${canonicalQuery}&X-Amz-Signature=${signature}`;
}

/** Joins a workflow path (a prefix inside the bucket) and a name: 'exports/x' + 'a.json' → 'exports/x/a.json'. */
export function joinKey(prefix: string, name: string): string {
  const p = prefix.trim().replace(/^\/+/, '').replace(/\/+$/, '');
  return p ? `${p}/${name}` : name;
}

/** A workflow's s3SourcePath as a listing prefix: taken literally, minus a leading slash. */
export function sourcePrefix(path: string): string {
  return path.trim().replace(/^\/+/, '');
}
