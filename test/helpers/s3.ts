/**
 * S3 for tests: the moto endpoint `npm run env:up` starts (AWS_ENDPOINT_URL in .env.test), a fresh
 * bucket per caller. Credentials are moto's dummies, exported for the AWS SDK's default chain.
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { storageFor, type Storage } from '../../src/storage/s3.ts';
import { testEnv } from './env.ts';

export function s3TestEnv(): Record<string, string> {
  // Explicit credentials and endpoint; the SDK never asks an instance-metadata address.
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_ACCESS_KEY_ID ??= testEnv('AWS_ACCESS_KEY_ID', 'test');
  process.env.AWS_SECRET_ACCESS_KEY ??= testEnv('AWS_SECRET_ACCESS_KEY', 'test');
  return { S3_ENDPOINT: testEnv('AWS_ENDPOINT_URL'), S3_FORCE_PATH_STYLE: 'true', AWS_REGION: testEnv('AWS_REGION', 'us-east-1') };
}

export async function createTestBucket(prefix = 'lf-test'): Promise<{ bucket: string; storage: Storage; env: Record<string, string> }> {
  const env = s3TestEnv();
  const storage = storageFor({ S3_ENDPOINT: env.S3_ENDPOINT, S3_FORCE_PATH_STYLE: true, AWS_REGION: env.AWS_REGION! });
  const bucket = `${prefix}-${randomBytes(5).toString('hex')}`;
  await storage.client.send(new CreateBucketCommand({ Bucket: bucket }));
  return { bucket, storage, env: { ...env, S3_BUCKET: bucket } };
}

/** A tiny valid PNG (1×1), so images served from moto are real images. */
export const PNG_1PX = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==',
  'base64',
);
