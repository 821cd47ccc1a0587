import { describe, expect, it } from 'vitest';
import { joinKey, MAX_PRESIGN_SECONDS, Storage } from '../../src/storage/s3.ts';

// The presigner reads credentials from the SDK's default chain: environment variables first, and
// nothing here may ask an instance-metadata endpoint.
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.AWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

const at = new Date('2013-05-24T00:00:00Z');

describe('S3 presigned URLs (@aws-sdk/s3-request-presigner)', () => {
  it('addresses the object path-style on the configured endpoint, every key byte outside RFC 3986 unreserved encoded', async () => {
    const s = new Storage({ S3_ENDPOINT: 'http://127.0.0.1:5055/', S3_FORCE_PATH_STYLE: true, AWS_REGION: 'us-east-1' });
    const url = new URL(await s.presignGet('b', "cat/a b+c%d#e?f\\g/é😀~!'()*.png", 3600, { signingDate: at }));
    expect(url.origin).toBe('http://127.0.0.1:5055');
    expect(url.pathname).toBe('/b/cat/a%20b%2Bc%25d%23e%3Ff%5Cg/%C3%A9%F0%9F%98%80~%21%27%28%29%2A.png');
    expect(url.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(url.searchParams.get('X-Amz-Credential')).toBe('AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request');
    expect(url.searchParams.get('X-Amz-Date')).toBe('20130524T000000Z');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('3600');
    expect(url.searchParams.get('X-Amz-SignedHeaders')).toBe('host');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
  });
  it('uses virtual-hosted addressing on AWS when path style is off', async () => {
    const s = new Storage({ S3_ENDPOINT: undefined, S3_FORCE_PATH_STYLE: false, AWS_REGION: 'eu-west-1' });
    const url = new URL(await s.presignGet('examplebucket', 'test.txt', 60, { signingDate: at }));
    expect(url.host).toBe('examplebucket.s3.eu-west-1.amazonaws.com');
    expect(url.pathname).toBe('/test.txt');
    expect(url.searchParams.get('X-Amz-Credential')).toBe('AKIAIOSFODNN7EXAMPLE/20130524/eu-west-1/s3/aws4_request');
  });
  it('keeps the lifetime within 1 s … 7 days', async () => {
    const s = new Storage({ S3_ENDPOINT: 'http://127.0.0.1:5055', S3_FORCE_PATH_STYLE: true, AWS_REGION: 'us-east-1' });
    const expires = async (seconds: number) => new URL(await s.presignGet('b', 'k', seconds)).searchParams.get('X-Amz-Expires');
    expect(await expires(30 * 24 * 3600)).toBe(String(MAX_PRESIGN_SECONDS));
    expect(await expires(0)).toBe('1');
    expect(await expires(90.7)).toBe('90');
  });
  it('joins workflow paths and names', () => {
    expect(joinKey('exports/x/', 'a.json')).toBe('exports/x/a.json');
    expect(joinKey('/exports/x', 'a.json')).toBe('exports/x/a.json');
    expect(joinKey('', 'a.json')).toBe('a.json');
  });
});
