import { randomBytes } from 'node:crypto';
import { generateWebhookSecret, SecretBox, secretBoxFromConfig } from '../../../src/crypto/secret-box';

describe('sealing subscription secrets (AES-256-GCM)', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

  it('opens what it sealed, and seals the same secret differently each time (random IV)', () => {
    const box = new SecretBox(randomBytes(32));
    const a = box.seal(secret);
    const b = box.seal(secret);
    expect(a).not.toBe(b);
    expect(a).not.toContain(secret.slice(6));
    expect(box.open(a)).toBe(secret);
    expect(box.open(b)).toBe(secret);
  });

  it('refuses a sealed secret that was tampered with or sealed under another key', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal(secret);
    const [version, iv, tag, ciphertext] = sealed.split('.') as [string, string, string, string];
    const flipped = Buffer.from(ciphertext, 'base64url');
    flipped[0] = flipped[0]! ^ 1;
    expect(() => box.open([version, iv, tag, flipped.toString('base64url')].join('.'))).toThrow();
    expect(() => new SecretBox(randomBytes(32)).open(sealed)).toThrow();
    expect(() => box.open('not-sealed')).toThrow('not a sealed secret');
  });

  it('takes ONCEFLOW_SECRET_KEY as hex or base64 of 32 bytes and refuses other lengths', () => {
    const key = randomBytes(32);
    const sealed = secretBoxFromConfig({ ONCEFLOW_SECRET_KEY: key.toString('hex') }).seal(secret);
    expect(secretBoxFromConfig({ ONCEFLOW_SECRET_KEY: key.toString('base64') }).open(sealed)).toBe(secret);
    expect(() => secretBoxFromConfig({ ONCEFLOW_SECRET_KEY: randomBytes(16).toString('hex') })).toThrow(/32 bytes/);
  });

  it('refuses the development key when NODE_ENV=production, and uses it otherwise', () => {
    expect(() => secretBoxFromConfig({ NODE_ENV: 'production' })).toThrow(/ONCEFLOW_SECRET_KEY is required/);
    const sealed = secretBoxFromConfig({}).seal(secret);
    expect(secretBoxFromConfig({ NODE_ENV: 'development' }).open(sealed)).toBe(secret);
    expect(secretBoxFromConfig({ NODE_ENV: 'production', ONCEFLOW_SECRET_KEY: randomBytes(32).toString('hex') })).toBeInstanceOf(SecretBox);
  });

  it('generates Standard Webhooks secrets (whsec_ + base64 of 24 random bytes)', () => {
    const generated = generateWebhookSecret();
    expect(generated).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(generated.slice(6), 'base64')).toHaveLength(24);
    expect(generateWebhookSecret()).not.toBe(generated);
  });
});
