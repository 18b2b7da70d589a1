// The words of the editor: field labels, ops per field from the served tables, ordinal op words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from './helpers.mjs';
import { fieldLabel, fieldGroup, opsFor, opLabel, valueKind, FIELD_LABELS, summarizeConditions, summarizeActions, ruleFieldNames } from '../../../server/admin/vocab.js';

useFixture();

test('fields read in a manager\'s words', () => {
  assert.equal(fieldLabel('last_customer_message_at'), 'Last customer reply');
  assert.equal(fieldLabel('contact.groups'), 'Contact groups');
  assert.equal(fieldLabel('custom.plan'), 'Ticket custom field: plan');
  assert.equal(fieldLabel('vars.tier'), 'Variable (from http_request): tier');
  assert.equal(fieldLabel('no.such.field'), 'no.such.field');
  assert.equal(fieldLabel(undefined), '');
  for (const [name, label] of Object.entries(FIELD_LABELS)) assert.notEqual(label, name, name);
});

test('fields go under their heading', () => {
  assert.equal(fieldGroup('subject'), 'Ticket');
  assert.equal(fieldGroup('contact.groups'), 'Contact');
  assert.equal(fieldGroup('contact.company.name'), 'Company');
  assert.equal(fieldGroup('message.body'), 'Message');
  assert.equal(fieldGroup('event.actor'), 'Event');
});

test('priority and status offer the ordinal comparisons, subject does not', () => {
  for (const f of ['priority', 'status']) {
    for (const op of ['gt', 'gte', 'lt', 'lte']) {
      assert.ok(opsFor(f).includes(op), `${f} ${op}`);
      assert.equal(valueKind(op, f), 'choice');
    }
  }
  assert.ok(!opsFor('subject').includes('gt'));
  assert.ok(!opsFor('contact.groups').includes('contains'));
  assert.deepEqual(opsFor('no.such.field'), []);
});

test('an ordinal op reads along the order; a numeric one stays a sign', () => {
  assert.equal(opLabel('gt', 'priority'), 'is above');
  assert.equal(opLabel('lte', 'status'), 'is at or below');
  assert.equal(opLabel('gt', 'custom.score'), '>');
  assert.equal(opLabel('contains', 'subject'), 'contains');
  assert.equal(opLabel('brand_new_op'), 'brand_new_op');
});

test('a rule\'s one-line summary uses the labels, and its search keeps the API names', () => {
  const rule = {
    conditions: { all: [{ field: 'contact.groups', op: 'includes', value: 'vip' },
      { any: [{ field: 'priority', op: 'gt', value: 'normal' }, { field: 'last_customer_message_at', op: 'is_empty' }] }] },
    actions: [{ type: 'set', field: 'priority', value: 'high' }, { type: 'add_tags', tags: ['vip'] }],
  };
  const when = summarizeConditions(rule.conditions);
  assert.ok(when.startsWith('Contact groups '), when);
  assert.ok(when.includes('Priority is above “normal”') || when.includes('Priority is above normal'), when);
  assert.ok(when.includes('Last customer reply'), when);
  assert.ok(!when.includes('contact.groups') && !when.includes('last_customer_message_at'), when);
  assert.ok(summarizeActions(rule.actions).startsWith('set Priority → '));
  assert.deepEqual(ruleFieldNames(rule), ['contact.groups', 'priority', 'last_customer_message_at', 'priority']);
});
