import { AddressPolicy, BlockedAddressError, blockedRule } from '../../../src/outbox/address-policy';

describe('the subscription address policy', () => {
  it('names the rule each internal range breaks, IPv4-mapped IPv6 included', () => {
    const cases: [string, string | undefined][] = [
      ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'],
      ['169.254.169.254', 'link-local'], ['fe80::1', 'link-local'],
      ['10.0.0.1', 'private'], ['172.16.5.4', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'], ['fd00::1', 'private'], ['fc00::1', 'private'],
      ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
      ['224.0.0.1', 'multicast'], ['ff02::1', 'multicast'],
      ['100.64.0.1', 'cgnat'], ['100.127.255.254', 'cgnat'],
      ['::ffff:127.0.0.1', 'loopback'], ['::ffff:7f00:1', 'loopback'], ['::ffff:169.254.169.254', 'link-local'], ['::ffff:10.1.1.1', 'private'], ['::ffff:100.64.1.1', 'cgnat'],
      ['93.184.216.34', undefined], ['172.32.0.1', undefined], ['100.128.0.1', undefined], ['2606:2800:220:1:248:1893:25c8:1946', undefined], ['::ffff:93.184.216.34', undefined],
    ];
    expect(cases.map(([address]) => [address, blockedRule(address)])).toEqual(cases);
  });

  it('refuses a URL whose literal host or any resolved address is internal, and lets allowlisted hosts through', async () => {
    const resolve = async (host: string) =>
      host === 'split.example' ? [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.5', family: 4 }] : [{ address: '93.184.216.34', family: 4 }];
    const policy = new AddressPolicy({ resolve, allowedHosts: ['127.0.0.1', 'Internal.Example'] });
    await expect(policy.checkUrl('http://[::ffff:127.0.0.2]/x')).rejects.toMatchObject({ rule: 'loopback' });
    await expect(policy.checkUrl('http://169.254.169.254/latest/meta-data')).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(policy.checkUrl('https://split.example/hook')).rejects.toMatchObject({ rule: 'private' });
    await expect(policy.checkUrl('https://public.example/hook')).resolves.toBeUndefined();
    await expect(policy.checkUrl('http://127.0.0.1:8081/webhooks')).resolves.toBeUndefined();
    await expect(policy.checkUrl('http://internal.example/hook')).resolves.toBeUndefined();
  });

  it('fails a connection’s lookup before the socket opens when the name now resolves inside', async () => {
    let answer = '93.184.216.34';
    const policy = new AddressPolicy({ resolve: async () => [{ address: answer, family: 4 }] });
    const lookup = (all: boolean) =>
      new Promise<unknown>((resolve, reject) => policy.lookup('rebind.example', { all }, (error, address) => (error ? reject(error) : resolve(address))));
    await expect(lookup(true)).resolves.toEqual([{ address: '93.184.216.34', family: 4 }]);
    await expect(lookup(false)).resolves.toBe('93.184.216.34');
    answer = '127.0.0.1';
    await expect(lookup(true)).rejects.toMatchObject({ rule: 'loopback' });
  });
});
