import { ConfigError, loadConfig } from '../../../src/config';

describe('loadConfig', () => {
  it('runs on an empty environment with the documented defaults', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect(config.TEMPORAL_ADDRESS).toBe('localhost:7233');
    expect(config.ONCEFLOW_MAX_WAIT_SECONDS).toBe(30);
    expect(config.GEMINI_MODELS).toEqual(['gemini-2.5-flash', 'gemini-2.5-flash-lite']);
    expect(config.DATABASE_URL).toBeUndefined();
  });

  it('names every bad variable in one error', () => {
    expect.assertions(2);
    try {
      loadConfig({ PORT: '70000', LOG_LEVEL: 'loud' });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems.map((p) => p.variable).sort()).toEqual(['LOG_LEVEL', 'PORT']);
    }
  });

  it('parses tenant pairs and rejects a pair without a key', () => {
    expect(loadConfig({ ONCEFLOW_TENANTS: 'acme:key-aaaaaaaa, globex:key-bbbbbbbb' }).ONCEFLOW_TENANTS).toEqual([
      { tenantId: 'acme', apiKey: 'key-aaaaaaaa' },
      { tenantId: 'globex', apiKey: 'key-bbbbbbbb' },
    ]);
    expect(() => loadConfig({ ONCEFLOW_TENANTS: 'acme' })).toThrow(/ONCEFLOW_TENANTS/);
  });

  it('treats an empty DATABASE_URL as unset', () => {
    expect(loadConfig({ DATABASE_URL: '' }).DATABASE_URL).toBeUndefined();
  });
});
