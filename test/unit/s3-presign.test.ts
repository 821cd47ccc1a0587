import { describe, expect, it } from 'vitest';
import { joinKey, presignUrl, uriEncode } from '../../src/storage/s3.ts';

describe('S3 presigned URLs', () => {
  it("reproduces AWS's published SigV4 query-string example", () => {
    // docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html ("An example").
    const url = presignUrl({
      url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'),
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
      expiresInSeconds: 86400,
      now: new Date('2013-05-24T00:00:00Z'),
    });
    expect(url).toBe(
      'https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256' +
        '&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request' +
        '&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host' +
        '&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
    );
  });
  it('caps the lifetime at 7 days and encodes keys the SigV4 way', () => {
    const url = presignUrl({
      url: new URL('http://127.0.0.1:5055/b/a%20b.jpg'),
      region: 'us-east-1',
      credentials: { accessKeyId: 'k', secretAccessKey: 's', sessionToken: 't/1' },
      expiresInSeconds: 30 * 24 * 3600,
    });
    expect(url).toContain('X-Amz-Expires=604800');
    expect(url).toContain('X-Amz-Security-Token=t%2F1');
    expect(url.startsWith('http://127.0.0.1:5055/b/a%20b.jpg?')).toBe(true);
    expect(uriEncode("a!b'(c)*")).toBe('a%21b%27%28c%29%2A');
  });
  it('joins workflow paths and names', () => {
    expect(joinKey('exports/x/', 'a.json')).toBe('exports/x/a.json');
    expect(joinKey('/exports/x', 'a.json')).toBe('exports/x/a.json');
    expect(joinKey('', 'a.json')).toBe('a.json');
  });
});
