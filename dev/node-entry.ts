/**
 * How the local stack starts a Node process of its own: the built JavaScript
 * when this file is itself built (an installed package has dist/ and no tsx),
 * the TypeScript source through tsx when it runs from a checkout (tests, `npm
 * start`), so the two never mix and a checkout needs no build step.
 */
import path from 'node:path';

/** '.js' in dist/, '.ts' in a checkout (tsx and jest's transform both keep the source file name). */
const EXTENSION = path.extname(__filename) === '.ts' ? '.ts' : '.js';

/** The file of `relative` (no extension) from this directory, in the same form as this file. */
export function nodeEntry(relative: string): string {
  return path.join(__dirname, `${relative}${EXTENSION}`);
}

/** node's arguments to run `entry`. */
export function nodeArgs(entry: string): string[] {
  return EXTENSION === '.ts' ? ['--import', 'tsx', entry] : [entry];
}

/**
 * Working directory of a child: the checkout's root for tsx (its tsconfig
 * there), the user's own directory for the built package.
 */
export function childCwd(): string {
  return EXTENSION === '.ts' ? path.resolve(__dirname, '..') : process.cwd();
}
