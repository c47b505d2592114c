import { readFileSync } from 'node:fs';
import path from 'node:path';
import { envSchema } from '../../../src/config';

const root = path.resolve(__dirname, '../../..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

describe('README.md', () => {
  it.each(Object.keys(envSchema.shape))('documents the variable %s in the environment table', (variable) => {
    expect(readme).toMatch(new RegExp(`^\\| \`${variable}\` \\|`, 'm'));
  });

  it('names the two commands, and .ci/run calls the same test command', () => {
    expect(readme).toContain('make start');
    expect(readme).toContain('make test');
    expect(readFileSync(path.join(root, '.ci/run'), 'utf8')).toMatch(/^make test$/m);
  });
});
