import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';

/**
 * The SDK's MockActivityEnvironment for activity unit tests, with its logger
 * at ERROR: the 'Activity failed' warnings of the failures a test provokes on
 * purpose stay out of the test output.
 */
export class QuietMockActivityEnvironment extends MockActivityEnvironment {
  constructor(info?: ConstructorParameters<typeof MockActivityEnvironment>[0]) {
    super(info, { logger: new DefaultLogger('ERROR') });
  }
}
