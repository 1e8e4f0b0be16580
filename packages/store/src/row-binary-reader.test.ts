import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WattsplitError } from '@wattsplit/wire';
import { rowBinaryCodec } from './row-binary.js';
import { decodeRowBinary, forEachRowBinary, getterFor } from './row-binary-reader.js';

const types = new Map([
  ['host', 'LowCardinality(String)'],
  ['seq', 'UInt64'],
  ['t_ns', 'Int64'],
  ['j', 'Float64'],
  ['f', 'Float32'],
  ['ids', 'Array(String)'],
  ['xs', 'Array(Float64)'],
  ['flags', 'Array(UInt8)'],
  ['n', 'Nullable(UInt32)'],
  ['small', 'Int16'],
  ['ts', "DateTime('UTC')"],
]);
const cols = [...types.keys()];
const typeList = [...types.values()];

test('RowBinary reader: what the encoder writes reads back the same, for every type the schema uses', () => {
  const rows = [
    { host: 'hé-1', seq: 2 ** 53 - 1, t_ns: -5, j: 1.5, f: 0.25, ids: ['a', '', 'ü'.repeat(40)], xs: [1e-300, -0, 3.25], flags: [1, 0], n: null, small: -300, ts: 1_700_000_000 },
    { host: 'hé-1', seq: 0, t_ns: 1_763_900_000_123_456_768, j: -2.5e10, f: -8, ids: [], xs: [], flags: [], n: 4_000_000_000, small: 32767, ts: 0 },
    { host: 'x'.repeat(300), seq: 7, t_ns: 0, j: 0, f: 0, ids: ['x'.repeat(70)], xs: [2], flags: [255], n: 0, small: 0, ts: 1 },
  ];
  const bytes = rowBinaryCodec('t', types, cols)!.encode(rows);
  const back = decodeRowBinary(bytes, typeList);
  assert.deepEqual(back, rows.map((r) => cols.map((c) => r[c as keyof typeof r])));
  // An Int64 past 2^53 comes back as the nearest double, as Number() of its decimal text would.
  assert.equal(back[1]![2], Number('1763900000123456768'));
  // Repeated strings of a column are one shared value; a value that differs in one byte is not taken for it.
  const same = decodeRowBinary(rowBinaryCodec('t', types, ['host'])!.encode([{ host: 'vm-0001' }, { host: 'vm-0002' }, { host: 'vm-0001' }]), ['String']);
  assert.deepEqual(same.map((r) => r[0]), ['vm-0001', 'vm-0002', 'vm-0001']);
});

test('RowBinary reader: forEachRowBinary visits every row in order with one reused row array', () => {
  const bytes = rowBinaryCodec('t', types, ['seq', 'host'])!.encode(Array.from({ length: 1000 }, (_, i) => ({ seq: i, host: `h${i % 7}` })));
  const seen: unknown[] = [];
  const arrays = new Set<unknown>();
  const n = forEachRowBinary(bytes, ['UInt64', 'String'], (row) => {
    seen.push(`${String(row[0])}:${String(row[1])}`);
    arrays.add(row);
  });
  assert.equal(n, 1000);
  assert.deepEqual(seen, Array.from({ length: 1000 }, (_, i) => `${i}:h${i % 7}`));
  assert.equal(arrays.size, 1);
});

test('RowBinary reader: bytes that end inside a row, or a type it does not read, are refused clearly', () => {
  const bytes = rowBinaryCodec('t', types, ['seq', 'ids'])!.encode([{ seq: 1, ids: ['abc'] }]);
  assert.throws(() => decodeRowBinary(bytes.subarray(0, bytes.length - 1), ['UInt64', 'Array(String)']), (e: unknown) => e instanceof WattsplitError && e.code === 'STORE_QUERY_FAILED' && /ends inside a value/.test(e.message));
  // Read with the wrong types the answer does not come out even: refused, not returned as garbage.
  assert.throws(() => decodeRowBinary(bytes, ['UInt64', 'UInt64']), /ends inside a value/);
  assert.throws(() => decodeRowBinary(bytes, ['UInt64', 'Map(String, UInt8)']), (e: unknown) => e instanceof WattsplitError && e.code === 'STORE_INVALID_INPUT' && /Map\(String, UInt8\)/.test(e.message));
  assert.equal(getterFor('Decimal(10, 2)'), undefined);
  assert.ok(getterFor('Array(Array(Float32))'));
  assert.ok(getterFor('LowCardinality(Nullable(String))'));
});
