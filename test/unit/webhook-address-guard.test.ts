/** The webhook SSRF guard: refused addresses and names, allowed hosts, public addresses allowed without connecting. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AddressGuard, AddressRefusedError, isForbiddenAddress } from '../../src/webhooks/address-guard.ts';

const refused = (guard: AddressGuard, url: string): Promise<void> =>
  assert.rejects(guard.check(new URL(url)), AddressRefusedError, url);

describe('AddressGuard', () => {
  it('refuses loopback, private, link-local, metadata, unspecified, CGNAT and IPv4-mapped addresses', async () => {
    const guard = new AddressGuard([]);
    for (const url of [
      'http://10.0.0.1/',
      'http://127.0.0.1:8080/hook',
      'http://[::1]/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:10.1.2.3]/',
      'http://172.16.5.4/',
      'http://172.31.255.255/',
      'http://192.168.1.1/',
      'http://100.64.0.1/',
      'http://100.100.100.200/',
      'http://0.0.0.0/',
      'http://[::]/',
      'http://[fc00::1]/',
      'http://[fd00:ec2::254]/',
      'http://[fe80::1]/',
      'http://2130706433/', // 127.0.0.1 written as a number: the URL parser normalizes it
      'http://0x7f.1/',
      'http://metadata.google.internal/computeMetadata/v1/',
    ]) {
      await refused(guard, url);
    }
  });

  it('refuses a name resolving to loopback (every resolved address is checked)', async () => {
    await refused(new AddressGuard([]), 'http://localhost:9000/');
    await refused(new AddressGuard(['example.com']), 'http://LOCALHOST./');
  });

  it('refuses schemes other than http and https', async () => {
    const guard = new AddressGuard(['127.0.0.1']);
    await refused(guard, 'ftp://93.184.216.34/');
    await refused(guard, 'file:///etc/passwd');
    await refused(guard, 'gopher://127.0.0.1/');
  });

  it('allows listed hosts, by literal, by name and by the addresses a name resolves to', async () => {
    assert.deepEqual(await new AddressGuard(['127.0.0.1']).check(new URL('http://127.0.0.1:8080/')), {
      address: '127.0.0.1',
      family: 4,
    });
    const byName = await new AddressGuard(['localhost']).check(new URL('http://localhost:8080/'));
    assert.ok(['127.0.0.1', '::1'].includes(byName.address), byName.address);
    assert.deepEqual(await new AddressGuard(['::1']).check(new URL('http://[::1]/')), {
      address: '::1',
      family: 6,
    });
    assert.deepEqual(await new AddressGuard(['10.0.0.0/8']).check(new URL('http://10.2.3.4/')), {
      address: '10.2.3.4',
      family: 4,
    });
    // Another private address stays refused.
    await refused(new AddressGuard(['127.0.0.1']), 'http://10.0.0.1/');
  });

  it('allows public addresses without connecting anywhere', async () => {
    const guard = new AddressGuard([]);
    assert.deepEqual(await guard.check(new URL('https://93.184.216.34/hook')), {
      address: '93.184.216.34',
      family: 4,
    });
    assert.deepEqual(await guard.check(new URL('http://[2606:2800:220:1:248:1893:25c8:1946]/')), {
      address: '2606:2800:220:1:248:1893:25c8:1946',
      family: 6,
    });
    assert.equal(isForbiddenAddress('8.8.8.8'), false);
    assert.equal(isForbiddenAddress('172.32.0.1'), false);
    assert.equal(isForbiddenAddress('100.128.0.1'), false);
    assert.equal(isForbiddenAddress('::ffff:8.8.8.8'), false);
    assert.equal(isForbiddenAddress('::ffff:169.254.169.254'), true);
  });
});
