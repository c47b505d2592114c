import { firstFailure } from '../../../dev/first-failure';

const after = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
const never = <T>() => new Promise<T>(() => undefined);

describe('the reason a local stack stops', () => {
  it('blames a keeper that exits within the grace after a role, as the role lost its server', async () => {
    expect(await firstFailure([after(5, 'worker')], [after(40, 'the temporal cluster keeper')], 2_000)).toBe('the temporal cluster keeper');
  });

  it('blames the role when no keeper exits within the grace', async () => {
    expect(await firstFailure([after(5, 'worker')], [never<string>()], 30)).toBe('worker');
    expect(await firstFailure([after(5, 'worker')], [], 30)).toBe('worker');
  });

  it('reports a keeper that exits first at once', async () => {
    const started = Date.now();
    expect(await firstFailure([never<string>()], [after(5, 'the postgres keeper')], 60_000)).toBe('the postgres keeper');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
