// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['eslint.config.mjs', 'test/helpers/node-environment.js', 'dist/**', 'node_modules/**', '.onceflow/**', 'coverage/**', 'bin/**', 'jest.config.js', 'test/tools/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
    },
  },
  {
    // Tests read loosely typed JSON bodies; `any` there keeps assertions readable.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'faults/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The sandbox boundary: workflow code is replayed deterministically and is
    // bundled without Node. No Node built-ins, no value imports from
    // activities/ or src/ (type imports are erased and allowed).
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'workflows/ runs in the Temporal sandbox: no Node built-ins.' })),
          patterns: [
            {
              group: ['../src/*', '../src/**', '../activities', '../activities/*', '../../*'],
              allowTypeImports: true,
              message: 'workflows/ may import only types from activities/ and src/.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'no process in the workflow sandbox' },
        { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' },
        { name: 'setInterval', message: 'use sleep() from @temporalio/workflow' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'nondeterministic; pass randomness in, or use the workflow uuid4()' },
        { object: 'Date', property: 'now', message: 'Date.now in a workflow is replay-safe but hides intent; use workflowInfo() or sleep' },
      ],
    },
  },
);
