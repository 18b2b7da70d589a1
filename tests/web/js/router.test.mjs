// Hash routes of the managers' page: parse and build, round trip, hostile text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRoute, routeHash, registerView, VIEWS } from '../../../server/admin/router.js';

test('a hash names a view, an id and parameters', () => {
  assert.deepEqual(parseRoute('#/rules/r-1'), { view: 'rules', id: 'r-1', params: {} });
  assert.deepEqual(parseRoute('#/runs?rule=r-1&outcome=fired'), { view: 'runs', id: null, params: { rule: 'r-1', outcome: 'fired' } });
  for (const empty of ['', '#', '#/', '#main', undefined]) assert.deepEqual(parseRoute(empty), { view: 'rules', id: null, params: {} });
  assert.deepEqual(parseRoute('#/rules/a%2Fb%20c'), { view: 'rules', id: 'a/b c', params: {} });
  assert.equal(parseRoute('#/rules/%E0%A4%A').id, '%E0%A4%A');  // a broken escape stays as typed
});

test('routeHash and parseRoute round-trip, leaving empty parameters out', () => {
  const cases = [['rules', null, {}], ['rules', 'weird id/with?&#', {}], ['runs', null, { rule: 'r 1', ticket: 'T-1' }]];
  for (const [view, id, params] of cases) {
    assert.deepEqual(parseRoute(routeHash(view, id, params)), { view, id, params });
  }
  assert.equal(routeHash('runs', null, { rule: 'r', ticket: '', outcome: null }), '#/runs?rule=r');
  assert.equal(routeHash('sla'), '#/sla');
});

test('registering a view is one call, and a bad name is refused', () => {
  const render = () => {};
  registerView('webhooks', render, { label: 'Webhooks' });
  assert.equal(VIEWS.webhooks.render, render);
  assert.equal(VIEWS.webhooks.label, 'Webhooks');
  assert.throws(() => registerView('Bad Name', render), /lower-case/);
});
