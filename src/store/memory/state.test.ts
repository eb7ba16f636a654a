import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { message, record, richMessage, richRecord, sub } from '../contract/fixtures.js';
import { StoreState, type Mutation } from './state.js';

function run(state: StoreState, mutation: Mutation | null): void {
  if (mutation) state.apply(mutation);
}

function exported(state: StoreState): string {
  return JSON.stringify([...state.exportRecords()]);
}

describe('StoreState', () => {
  test('clone() is a point-in-time copy that later mutations do not reach', () => {
    const state = new StoreState();
    const a = state.planTake(richRecord('a'), false);
    run(state, a.mutation);
    const b = state.planTake(record('b'), false);
    run(state, b.mutation);
    run(state, state.planSubscribe('a', a.result.epoch, [sub('x/#')]));
    const p1 = state.planPublish({ message: richMessage('x/1'), deliveries: [{ clientId: 'a', qos: 2, retain: false }, { clientId: 'b', qos: 1, retain: false }], retain: 'set' });
    run(state, p1.mutation);
    const p2 = state.planPublish({ message: message('x/2'), deliveries: [{ clientId: 'a', qos: 1, retain: false }] });
    run(state, p2.mutation);
    run(state, state.planSent('a', a.result.epoch, p1.result.seqs[0]!, 1));
    run(state, state.planQos2Add('a', a.result.epoch, 5));

    const copy = state.clone();
    const before = exported(copy);
    assert.equal(before, exported(state));

    run(state, state.planReleased('a', a.result.epoch, 1));
    run(state, state.planSent('a', a.result.epoch, p2.result.seqs[0]!, 2));
    run(state, state.planComplete('a', a.result.epoch, 2));
    run(state, state.planSubscribe('a', a.result.epoch, [sub('x/#', 0), sub('y')]));
    run(state, state.planQos2Add('a', a.result.epoch, 6));
    run(state, state.planPublish({ message: message('x/1', '', { retain: true }), deliveries: [{ clientId: 'b', qos: 1, retain: false }], retain: 'delete' }).mutation);
    run(state, state.planUpdate(record('b', { disconnectedAt: 5 }), b.result.epoch));
    run(state, state.planTake(record('a'), true).mutation);
    run(state, state.planDelete('b'));
    run(state, state.planTake(record('c'), false).mutation);

    assert.equal(exported(copy), before);
    assert.notEqual(exported(state), before);
  });

  test('plans change nothing until applied', () => {
    const state = new StoreState();
    const a = state.planTake(record('a'), false);
    assert.equal(state.getSession('a'), undefined);
    run(state, a.mutation);
    const before = exported(state);
    state.planPublish({ message: message('t'), deliveries: [{ clientId: 'a', qos: 1, retain: false }], retain: 'set' });
    state.planTake(record('a'), true);
    state.planDelete('a', a.result.epoch);
    assert.equal(exported(state), before);
  });
});
