/**
 * S3 for batches: list source prefixes (with continuation, and StartAfter for incremental catalog
 * syncs), put exports, read, copy to the rejection archive, and presigned GET URLs that a Label
 * Studio page can load (made by @aws-sdk/s3-request-presigner). Any S3-compatible endpoint works: S3_ENDPOINT plus path-style addressing
 * (S3_FORCE_PATH_STYLE, default true) — moto in tests. Credentials come from the AWS SDK's default
 * chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile, instance role, ...).
 */
import {
  CopyObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
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

  constructor(config: S3Settings) {
    this.client = new S3Client({
      region: config.AWS_REGION,
      endpoint: config.S3_ENDPOINT?.replace(/\/+$/, ''),
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

  /**
   * A presigned GET URL for the object, valid for `expiresInSeconds` (clamped to 1 s … 7 days,
   * S3's limit for SigV4 query signing), made by @aws-sdk/s3-request-presigner with this client's
   * endpoint, addressing style, region and credentials. `signingDate` is for tests.
   */
  async presignGet(bucket: string, key: string, expiresInSeconds: number, opts: { signingDate?: Date } = {}): Promise<string> {
    const expiresIn = Math.max(1, Math.min(MAX_PRESIGN_SECONDS, Math.floor(expiresInSeconds)));
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn, signingDate: opts.signingDate });
  }
}

/** S3's longest lifetime of a SigV4-presigned URL: 7 days. */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** Joins a workflow path (a prefix inside the bucket) and a name: 'exports/x' + 'a.json' → 'exports/x/a.json'. */
export function joinKey(prefix: string, name: string): string {
  const p = prefix.trim().replace(/^\/+/, '').replace(/\/+$/, '');
  return p ? `${p}/${name}` : name;
}

/** A workflow's s3SourcePath as a listing prefix: taken literally, minus a leading slash. */
export function sourcePrefix(path: string): string {
  return path.trim().replace(/^\/+/, '');
}
