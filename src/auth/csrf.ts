/**
 * CSRF tokens for the login form. NextAuth pairs its token with a cookie; ours is self-verifying
 * (nonce.expiry.hmac), so the reference's curl flow works even when the client does not send the
 * csrf cookie back, while a token cannot be forged without FLEET_SECRET_KEY.
 */
import { randomToken, type SecretBox } from '../crypto.ts';

const TTL_SECONDS = 24 * 3600;

export function issueCsrfToken(secrets: SecretBox, now = Date.now()): string {
  const payload = `${randomToken(16)}.${Math.floor(now / 1000) + TTL_SECONDS}`;
  return `${payload}.${secrets.sign(`csrf:${payload}`)}`;
}

export function verifyCsrfToken(secrets: SecretBox, token: unknown, now = Date.now()): boolean {
  if (typeof token !== 'string' || token.length > 200) return false;
  const parts = token.split('.');
  if (parts.length !== 3) return false;
  const [nonce, expiry, signature] = parts as [string, string, string];
  if (!secrets.verify(`csrf:${nonce}.${expiry}`, signature)) return false;
  return Number(expiry) * 1000 > now;
}
