import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkAcl, parseAclFile, READ, WRITE } from './acl-file.js';
import { filterCovers, filterMatches, substitute } from './topic-match.js';

describe('topic matching for rules', () => {
  it('filterMatches follows MQTT wildcards and the $ rule', () => {
    assert.equal(filterMatches('a/#', 'a'), true);
    assert.equal(filterMatches('a/+/c', 'a/b/c'), true);
    assert.equal(filterMatches('a/+', 'a/b/c'), false);
    assert.equal(filterMatches('#', '$SYS/x'), false);
    assert.equal(filterMatches('$SYS/#', '$SYS/x'), true);
  });
  it('filterCovers: every topic of the subscription must match the rule', () => {
    assert.equal(filterCovers('#', '#'), true);
    assert.equal(filterCovers('a/#', 'a/+/b'), true);
    assert.equal(filterCovers('a/#', 'a'), true);
    assert.equal(filterCovers('a/+', 'a/#'), false);
    assert.equal(filterCovers('a/+', 'a/+'), true);
    assert.equal(filterCovers('a/b', 'a/+'), false);
    assert.equal(filterCovers('+/b', 'x/b'), true);
    assert.equal(filterCovers('#', '$SYS/#'), false);
  });
  it('substitute replaces whole levels only and refuses dangerous values', () => {
    assert.equal(substitute('c/%c/%u', 'id', 'me'), 'c/id/me');
    assert.equal(substitute('c/x%c', 'id', 'me'), 'c/x%c');
    assert.equal(substitute('c/%u', 'id', undefined), undefined);
    assert.equal(substitute('c/%c', 'a/b', undefined), undefined);
    assert.equal(substitute('c/%u', 'id', '#'), undefined);
  });
});

describe('ACL file', () => {
  const { rules, issues } = parseAclFile(`# comment
topic read pub/#
topic   pub/both
user alice
topic readwrite home/#
topic deny home/secret
topic write with space/x y
user
topic read nobody/#
user bob
pattern read c/%c/#
pattern write u/%u/data
pattern deny blocked/%c
topic bogus x
frobnicate
pattern readwrite bad/#/x
`);

  it('reports bad lines with their numbers', () => {
    assert.deepEqual(
      issues.map((i) => i.line),
      [8, 14, 15, 16],
    );
  });

  it('lines before any user apply to anonymous clients', () => {
    const anon = { clientId: 'x' };
    assert.equal(checkAcl(rules, anon, 'pub/a', READ), 'allow');
    assert.equal(checkAcl(rules, anon, 'pub/a', WRITE), 'nomatch');
    assert.equal(checkAcl(rules, anon, 'pub/both', WRITE), 'allow'); // access omitted = readwrite
    assert.equal(checkAcl(rules, { clientId: 'x', username: 'alice' }, 'pub/a', READ), 'nomatch');
  });

  it('deny first, whatever the order; topics with spaces after an access', () => {
    const alice = { clientId: 'a1', username: 'alice' };
    assert.equal(checkAcl(rules, alice, 'home/x', WRITE), 'allow');
    assert.equal(checkAcl(rules, alice, 'home/secret', READ), 'deny');
    assert.equal(checkAcl(rules, alice, 'home/secret', WRITE), 'deny');
    assert.equal(checkAcl(rules, alice, 'with space/x y', WRITE), 'allow');
    assert.equal(checkAcl(rules, alice, 'blocked/a1', READ), 'deny'); // pattern deny beats user grants
  });

  it('patterns: %c and %u', () => {
    const bob = { clientId: 'b1', username: 'bob' };
    assert.equal(checkAcl(rules, bob, 'c/b1/x', READ), 'allow');
    assert.equal(checkAcl(rules, bob, 'c/b2/x', READ), 'nomatch');
    assert.equal(checkAcl(rules, bob, 'u/bob/data', WRITE), 'allow');
    assert.equal(checkAcl(rules, { clientId: 'b1' }, 'u/bob/data', WRITE), 'nomatch'); // no user name: %u rule skipped
    assert.equal(checkAcl(rules, { clientId: '+', username: 'bob' }, 'c/+/x', READ), 'nomatch');
  });

  it('subscriptions must be covered; $share is ignored', () => {
    const alice = { clientId: 'a1', username: 'alice' };
    assert.equal(checkAcl(rules, alice, 'home/+', READ, true), 'allow');
    assert.equal(checkAcl(rules, alice, '$share/g/home/#', READ, true), 'allow');
    assert.equal(checkAcl(rules, alice, '#', READ, true), 'nomatch');
    assert.equal(checkAcl(rules, alice, 'home/secret', READ, true), 'deny');
  });
});
