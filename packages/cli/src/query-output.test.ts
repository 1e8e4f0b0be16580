// `wattsplit query` prints what the store returns; a clickhouse-server (--url) colours its Pretty formats'
// headers with ANSI escapes (ESC[1m … ESC[0m), which must not reach a pipe or a file (stdout not a TTY).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queryOutput } from './commands/query.js';

const ESC = '\u001b';
const coloured = [
  `┌─${ESC}[1mtenant${ESC}[0m─┬─${ESC}[1mjoules${ESC}[0m─┐`,
  '│ acme   │    120 │',
  '└────────┴────────┘',
].join('\n');
const plain = ['┌─tenant─┬─joules─┐', '│ acme   │    120 │', '└────────┴────────┘'].join('\n');

test('queryOutput: a Pretty table from a server, stdout not a TTY: no ANSI escapes, the table otherwise unchanged', () => {
  const out = queryOutput(`${coloured}\n`, 'PrettyCompact', false);
  assert.equal(out, `${plain}\n`);
  assert.doesNotMatch(out, new RegExp(ESC));
  // every SGR form: bold, reset, several parameters, none
  assert.equal(queryOutput(`${ESC}[1;32mx${ESC}[m y${ESC}[0;1;4m`, 'Pretty', false), 'x y\n');
});

test('queryOutput: on a TTY the server\'s colours are kept', () => {
  assert.equal(queryOutput(`${coloured}\n`, 'PrettyCompact', true), `${coloured}\n`);
});

test('queryOutput: uncoloured text (the embedded store) is unchanged, given its missing final newline', () => {
  assert.equal(queryOutput(plain, 'PrettyCompact', false), `${plain}\n`);
  assert.equal(queryOutput('', 'PrettyCompact', false), '');
});

test('queryOutput: non-Pretty formats are data and pass through byte for byte (no newline added twice)', () => {
  const csv = `"tenant","note"\n"acme","${ESC}[1m"\n`;
  assert.equal(queryOutput(csv, 'CSVWithNames', false), csv);
  assert.equal(queryOutput('{"a":1}', 'JSONEachRow', false), '{"a":1}\n');
});
