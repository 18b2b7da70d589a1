// Loads the vocabulary fixture (a part of /admin/vocab.json, checked against the served one by
// tests/web/test_words_node.py) into vocab.js, as the page's loadVocab would.
import { readFileSync } from 'node:fs';
import { setVocab } from '../../../server/admin/vocab.js';

export function useFixture() {
  return setVocab(JSON.parse(readFileSync(new URL('./vocab_fixture.json', import.meta.url), 'utf8')));
}
