import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * Seals subscription signing secrets at rest with AES-256-GCM. They cannot be
 * hashed: the relay needs the secret itself to sign each delivery.
 * Format: `v1.<iv>.<tag>.<ciphertext>`, each part base64url.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('the secret key must be 32 bytes');
    this.key = key;
  }

  seal(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v1', iv, cipher.getAuthTag(), ciphertext].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
  }

  open(sealed: string): string {
    const [version, iv, tag, ciphertext] = sealed.split('.');
    if (version !== 'v1' || !iv || !tag || !ciphertext) throw new Error('not a sealed secret');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
  }
}

/** Development key, derived from a fixed string: never valid in production (see secretBoxFromConfig). */
const DEVELOPMENT_KEY = createHash('sha256').update('onceflow development secret key: never use in production').digest();

/** ONCEFLOW_SECRET_KEY as 64 hex characters or base64 of 32 bytes; the development key when unset outside production. */
export function secretBoxFromConfig(config: { ONCEFLOW_SECRET_KEY?: string; NODE_ENV?: string }): SecretBox {
  const raw = config.ONCEFLOW_SECRET_KEY;
  if (!raw) {
    if (config.NODE_ENV === 'production') throw new Error('ONCEFLOW_SECRET_KEY is required when NODE_ENV=production');
    return new SecretBox(DEVELOPMENT_KEY);
  }
  const key = /^[0-9a-f]{64}$/i.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (key.length !== 32) throw new Error('ONCEFLOW_SECRET_KEY must be 32 bytes, as 64 hex characters or base64');
  return new SecretBox(key);
}

/** A new Standard Webhooks signing secret. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}
