// The editor's pure tree helpers: paths, edits, keeping a condition valid, 422 placement, any_held.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from './helpers.mjs';
import {
  isGroup, modeOf, setMode, newCondition, newGroup, addChild, parsePath, parentPath, nodeAt, fixLeaf,
  pickField, uniqueDetails, placeDetails, describeNode, anyHeldRows, namesUsed,
} from '../../../server/admin/ruletree.js';

useFixture();

test('paths parse and climb as the service writes them', () => {
  assert.deepEqual(parsePath('conditions.all[1].any[0].value'), ['conditions', 'all', 1, 'any', 0, 'value']);
  assert.equal(parentPath('conditions.all[1].any[0].value'), 'conditions.all[1].any[0]');
  assert.equal(parentPath('conditions.all[1]'), 'conditions.all');
  assert.equal(parentPath('conditions'), '');
  assert.equal(parentPath(''), '');
});

test('a tree is built by adding children and switching modes', () => {
  const root = { all: [] };
  assert.equal(addChild(root, 'conditions', newCondition()), 'conditions.all[0]');
  assert.equal(addChild(root, 'conditions', newGroup()), 'conditions.all[1]');
  assert.ok(isGroup(root.all[1]) && !isGroup(root.all[0]));
  assert.equal(modeOf(root.all[1]), 'any');
  setMode(root.all[1], 'all');
  assert.deepEqual(root.all[1], { all: [newCondition()] });
  const rule = { conditions: root };
  assert.equal(nodeAt(rule, 'conditions.all[1].all[0].field'), 'subject');
  assert.equal(nodeAt(rule, 'conditions.all[7].field'), undefined);
  assert.equal(nodeAt(rule, 'conditions.all[0].field.x.y'), undefined);
});

test('changing the field keeps the condition one the engine accepts', () => {
  const leaf = { field: 'subject', op: 'contains', value: 'refund', case_sensitive: true };
  pickField(leaf, 'priority', ['custom.', 'vars.']);
  assert.equal(leaf.op, 'contains');  // priority is text too: contains is still offered
  leaf.op = 'gt';
  fixLeaf(leaf);
  assert.equal(leaf.value, 'low');  // not one of the order: the first of it
  assert.equal(leaf.case_sensitive, undefined);
  pickField(leaf, 'contact.groups', ['custom.', 'vars.']);
  assert.equal(leaf.op, 'includes');  // no gt on a list, no "is": the first in the labels' order
  assert.equal(leaf.value, 'low');  // a value that still fits the op's kind is kept
  leaf.op = 'includes_any';
  fixLeaf(leaf);
  assert.deepEqual(leaf.value, []);  // one that does not becomes the kind's empty value
  const custom = { field: 'custom.plan', op: 'is', value: 'gold' };
  pickField(custom, 'vars.', ['custom.', 'vars.']);
  assert.equal(custom.field, 'vars.plan');  // the key typed so far is kept
  const timed = { field: 'last_customer_message_at', op: 'older_than', value: '1h' };
  timed.op = 'older_than_business';
  fixLeaf(timed);
  assert.equal(timed.calendar, '');
  timed.op = 'newer_than';
  fixLeaf(timed);
  assert.ok(!('calendar' in timed));
});

test('422 details go to the nearest control, repeats once, the rest to the summary', () => {
  const controls = new Set(['name', 'conditions', 'conditions.all[0].value', 'actions']);
  const details = [
    { path: 'conditions.all[0].value', reason: 'is not a duration' },
    { path: 'conditions.all[0].value', reason: 'is not a duration' },
    { path: 'conditions.all[3].any[1].op', reason: 'is not an op' },
    { path: 'actions[2].tags', message: 'must be a list' },
    { path: 'bogus', reason: 'is unknown' },
  ];
  assert.equal(uniqueDetails(details).length, 4);
  const { placed, leftovers } = placeDetails(details, (p) => controls.has(p));
  assert.deepEqual(placed.map((d) => [d.path, d.at]), [
    ['conditions.all[0].value', 'conditions.all[0].value'],
    ['conditions.all[3].any[1].op', 'conditions'],
    ['actions[2].tags', 'actions'],
  ]);
  assert.equal(placed[2].reason, 'must be a list');
  assert.deepEqual(leftovers, [{ path: 'bogus', reason: 'is unknown' }]);
  assert.deepEqual(placeDetails('not a list', () => true), { placed: [], leftovers: [] });
});

test('a run\'s any_held reads as the branch that held, in words', () => {
  const rule = { conditions: { all: [
    { field: 'subject', op: 'contains', value: 'refund' },
    { any: [{ field: 'contact.groups', op: 'includes', value: 'vip' }, { field: 'priority', op: 'gt', value: 'normal' }] },
  ] } };
  const rows = anyHeldRows({ 'conditions.all[1]': 'conditions.all[1].any[1]' }, rule);
  assert.deepEqual(rows, [{ group: 'conditions.all[1]', branch: 'conditions.all[1].any[1]', ordinal: 2, of: 2,
    text: 'Priority is above normal' }]);
  const bare = anyHeldRows({ 'conditions.all[1]': 'conditions.all[1].any[0]' }, null);
  assert.equal(bare[0].text, null);
  assert.equal(bare[0].ordinal, 1);
  assert.deepEqual(anyHeldRows(undefined, rule), []);
  assert.equal(describeNode({ any: [{ field: 'tags', op: 'includes', value: 'x' }, { all: [] }] }), 'Tags includes x or (always)');
});

test('the pickers a draft uses', () => {
  assert.deepEqual([...namesUsed({ actions: [{ type: 'add_tags' }, { type: 'run_script' }, { type: 'apply_sla' }] })].sort(),
    ['policies', 'scripts']);
  assert.equal(namesUsed({ actions: [] }).size, 0);
});
