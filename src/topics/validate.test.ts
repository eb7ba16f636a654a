import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { validateTopicName, validateTopicFilter, parseSharedFilter, isSysTopic } from './validate.js';

const ok = (r: string | undefined, what: string) => assert.equal(r, undefined, `${what}: ${r}`);
const bad = (r: string | undefined, what: string) => assert.equal(typeof r, 'string', `${what} should be invalid`);

describe('validateTopicName', () => {
  test('valid names, including empty levels, spaces, case and $ topics (§4.7.3)', () => {
    for (const t of ['sport/tennis/player1', '/finance', '/', '//', 'a//b', 'Accounts payable', 'ACCOUNTS', '$SYS/broker', 'é/日本/😀']) {
      ok(validateTopicName(t), t);
    }
  });

  test('[MQTT-4.7.3-1] a topic name is at least one character long', () => {
    bad(validateTopicName(''), "''");
  });

  test('[MQTT-4.7.0-1] [MQTT-3.3.2-2] no wildcards in a topic name', () => {
    for (const t of ['+', '#', 'sport/+', 'sport/#', 'sport/tennis#', 'a+b', '#/a']) bad(validateTopicName(t), t);
  });

  test('[MQTT-4.7.3-2] no U+0000', () => {
    bad(validateTopicName('a\u0000b'), 'NUL');
    bad(validateTopicName('\u0000'), 'NUL alone');
  });

  test('[MQTT-1.5.4-1] lone surrogates are rejected, pairs accepted', () => {
    bad(validateTopicName('a\ud800'), 'trailing high surrogate');
    bad(validateTopicName('a\ud800b'), 'high surrogate then BMP');
    bad(validateTopicName('\udc00a'), 'lone low surrogate');
    bad(validateTopicName('\udc00\ud800'), 'reversed pair');
    ok(validateTopicName('\ud83d\ude00'), 'surrogate pair');
  });

  test('[MQTT-4.7.3-3] at most 65535 UTF-8 bytes', () => {
    ok(validateTopicName('a'.repeat(65535)), '65535 ASCII');
    bad(validateTopicName('a'.repeat(65536)), '65536 ASCII');
    // 'é' is 2 bytes, '€' 3, '😀' 4 (two UTF-16 units): count bytes, not code units
    ok(validateTopicName('é'.repeat(32767) + 'a'), '65535 bytes of 2-byte chars');
    bad(validateTopicName('é'.repeat(32768)), '65536 bytes of 2-byte chars');
    bad(validateTopicName('€'.repeat(21846)), '65538 bytes of 3-byte chars');
    bad(validateTopicName('😀'.repeat(16384)), '65536 bytes of 4-byte chars');
  });

  test('configured maxLength (bytes) and maxLevels', () => {
    ok(validateTopicName('abcd', { maxLength: 4 }), 'at maxLength');
    bad(validateTopicName('abcde', { maxLength: 4 }), 'over maxLength');
    bad(validateTopicName('éé/', { maxLength: 4 }), 'over maxLength in bytes');
    ok(validateTopicName('a/b/c', { maxLevels: 3 }), 'at maxLevels');
    bad(validateTopicName('a/b/c/', { maxLevels: 3 }), 'over maxLevels (trailing empty level)');
    ok(validateTopicName('a'.repeat(65535), { maxLength: 100000 }), 'maxLength above the protocol cap');
    bad(validateTopicName('a'.repeat(65536), { maxLength: 100000 }), 'protocol cap still applies');
  });
});

describe('validateTopicFilter', () => {
  // The §4.7.1 examples of MQTT 5.0 plus edge cases.
  const valid = [
    'sport/tennis/player1/#', 'sport/#', '#', 'sport/tennis/#', '/#', '//#',
    '+', '+/tennis/#', 'sport/+/player1', '+/+', '/+', '+/', 'sport/+', '+/+/+', 'a//+',
    '$SYS/#', '$SYS/monitor/+', 'a/b', '/', 'a//b',
  ];
  const invalid: [string, string][] = [
    ['sport/tennis#', '[MQTT-4.7.1-1]'],
    ['sport/tennis/#/ranking', '[MQTT-4.7.1-1]'],
    ['#/', '[MQTT-4.7.1-1]'],
    ['##', '[MQTT-4.7.1-1]'],
    ['a/b#', '[MQTT-4.7.1-1]'],
    ['sport+', '[MQTT-4.7.1-2]'],
    ['+sport', '[MQTT-4.7.1-2]'],
    ['sp+ort/a', '[MQTT-4.7.1-2]'],
    ['++', '[MQTT-4.7.1-2]'],
    ['a/+b/c', '[MQTT-4.7.1-2]'],
    ['+#', '[MQTT-4.7.1-1]'],
    ['', '[MQTT-4.7.3-1]'],
    ['a/\u0000', '[MQTT-4.7.3-2]'],
    ['a/\ud800', '[MQTT-1.5.4-1]'],
  ];

  test('valid filters from §4.7.1', () => {
    for (const f of valid) ok(validateTopicFilter(f), f);
  });

  for (const [f, id] of invalid) {
    test(`${id} rejects ${JSON.stringify(f)}`, () => bad(validateTopicFilter(f), f));
  }

  test('[MQTT-4.7.3-3] and configured limits apply to filters', () => {
    ok(validateTopicFilter('a'.repeat(65533) + '/#'), '65535 bytes');
    bad(validateTopicFilter('a'.repeat(65534) + '/#'), '65536 bytes');
    bad(validateTopicFilter('a/+/#', { maxLevels: 2 }), 'levels');
    ok(validateTopicFilter('a/+/#', { maxLevels: 3, maxLength: 5 }), 'at limits');
    bad(validateTopicFilter('a/+/#', { maxLength: 4 }), 'length');
  });
});

describe('parseSharedFilter', () => {
  test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] well-formed shared filters', () => {
    assert.deepEqual(parseSharedFilter('$share/grp/sport/#'), { group: 'grp', filter: 'sport/#' });
    assert.deepEqual(parseSharedFilter('$share/g/+'), { group: 'g', filter: '+' });
    assert.deepEqual(parseSharedFilter('$share/g//'), { group: 'g', filter: '/' });
    assert.deepEqual(parseSharedFilter('$share/g/$SYS/#'), { group: 'g', filter: '$SYS/#' });
    assert.deepEqual(parseSharedFilter('$share/g/$share/x/y'), { group: 'g', filter: '$share/x/y' });
  });

  test('not a shared filter', () => {
    for (const f of ['sport/#', '$share', '$SHARE/g/a', '$sharex/g/a', 'a/$share/g/b', '$queue/a']) {
      assert.equal(parseSharedFilter(f), undefined, f);
    }
  });

  const invalid: [string, string][] = [
    ['$share/', '[MQTT-4.8.2-1] empty ShareName, no filter'],
    ['$share//a', '[MQTT-4.8.2-1] empty ShareName'],
    ['$share/grp', '[MQTT-4.8.2-2] no "/" after ShareName'],
    ['$share/grp/', '[MQTT-4.8.2-2] empty filter'],
    ['$share/+/a', '[MQTT-4.8.2-2] "+" in ShareName'],
    ['$share/g+/a', '[MQTT-4.8.2-2] "+" in ShareName'],
    ['$share/#/a', '[MQTT-4.8.2-2] "#" in ShareName'],
    ['$share/g#/a', '[MQTT-4.8.2-2] "#" in ShareName'],
    ['$share/g/a#', '[MQTT-4.7.1-1] invalid inner filter'],
    ['$share/g/a+', '[MQTT-4.7.1-2] invalid inner filter'],
    ['$share/g\u0000/a', '[MQTT-4.7.3-2] NUL in ShareName'],
  ];
  for (const [f, why] of invalid) {
    test(`${why}: ${JSON.stringify(f)}`, () => assert.equal(parseSharedFilter(f), 'invalid'));
  }
});

test('isSysTopic: names starting with $ (§4.7.2)', () => {
  assert.equal(isSysTopic('$SYS/broker/uptime'), true);
  assert.equal(isSysTopic('$'), true);
  assert.equal(isSysTopic('$share/g/a'), true);
  assert.equal(isSysTopic('SYS/$'), false);
  assert.equal(isSysTopic('/$SYS'), false);
  assert.equal(isSysTopic(''), false);
});
