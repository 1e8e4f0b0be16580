import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WattsplitError } from '@wattsplit/wire';
import { IN_SLOT, putterFor, rowBinaryCodec, slot, type RowProjection } from './row-binary.js';

const types = new Map([
  ['host', 'LowCardinality(String)'],
  ['seq', 'UInt64'],
  ['t_ns', 'Int64'],
  ['j', 'Float64'],
  ['ids', 'Array(String)'],
  ['flags', 'Array(UInt8)'],
  ['n', 'Nullable(UInt32)'],
  ['ts', "DateTime('UTC')"],
]);

test('RowBinary: each type is laid out as ClickHouse reads it', () => {
  const c = rowBinaryCodec('t', types, ['host', 'seq', 't_ns', 'j', 'ids', 'flags', 'n', 'ts'])!;
  assert.ok(c);
  const buf = c.encode([{ host: 'hé', seq: 2 ** 53 + 2, t_ns: -5, j: 1.5, ids: ['a', ''], flags: [1, 0], n: null, ts: 1_700_000_000 }]);
  const expected = Buffer.concat([
    Buffer.from([3, 0x68, 0xc3, 0xa9]), // varint length 3, "hé" in UTF-8
    Buffer.from('0200000000002000', 'hex'), // 2^53 + 2, little endian
    Buffer.from('fbffffffffffffff', 'hex'), // -5 two's complement
    Buffer.from('000000000000f83f', 'hex'), // 1.5
    Buffer.from([2, 1, 0x61, 0]), // ['a', '']
    Buffer.from([2, 1, 0]), // [1, 0]
    Buffer.from([1]), // NULL
    Buffer.from('00f15365', 'hex'), // 1700000000 as UInt32 LE
  ]);
  assert.equal(buf.toString('hex'), expected.toString('hex'));
  // Int64 of a nanosecond timestamp beyond 2^53 (an integer double) keeps every bit it has.
  const big = rowBinaryCodec('t', types, ['t_ns'])!.encode([{ t_ns: 1_763_900_000_123_456_768 }]);
  assert.equal(big.readBigInt64LE(0), 1_763_900_000_123_456_768n);
  // Integers as decimal strings or bigint (what the SQL literal helpers give) are exact, also past 2^53.
  const asText = rowBinaryCodec('t', types, ['seq', 't_ns'])!.encode([{ seq: '18446744073709551615', t_ns: -9_223_372_036_854_775_808n }]);
  assert.equal(asText.readBigUInt64LE(0), 18_446_744_073_709_551_615n);
  assert.equal(asText.readBigInt64LE(8), -9_223_372_036_854_775_808n);
  assert.equal(rowBinaryCodec('t', types, ['flags'])!.encode([{ flags: ['1', 0n] }]).toString('hex'), '020100');
  // Long strings and many rows grow the buffer.
  const many = rowBinaryCodec('t', types, ['host'])!.encode(Array.from({ length: 5000 }, () => ({ host: 'x'.repeat(300) })));
  assert.equal(many.length, 5000 * (2 + 300));
});

test('RowBinary: integers and doubles are the bytes of Buffer\'s own little-endian writers, at the edges of each range and for random values, in both encode paths', () => {
  const intTypes: Array<[string, (b: Buffer, v: number) => void, number, number, number]> = [
    ['UInt8', (b, v) => b.writeUInt8(v), 1, 0, 2 ** 8 - 1],
    ['Int8', (b, v) => b.writeInt8(v), 1, -(2 ** 7), 2 ** 7 - 1],
    ['UInt16', (b, v) => b.writeUInt16LE(v), 2, 0, 2 ** 16 - 1],
    ['Int16', (b, v) => b.writeInt16LE(v), 2, -(2 ** 15), 2 ** 15 - 1],
    ['UInt32', (b, v) => b.writeUInt32LE(v), 4, 0, 2 ** 32 - 1],
    ['Int32', (b, v) => b.writeInt32LE(v), 4, -(2 ** 31), 2 ** 31 - 1],
    ['UInt64', (b, v) => b.writeBigUInt64LE(BigInt(v)), 8, 0, 2 ** 64 - 2 ** 11],
    ['Int64', (b, v) => b.writeBigInt64LE(BigInt(v)), 8, -(2 ** 63), 2 ** 63 - 2 ** 10],
  ];
  let seed = 12345;
  const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  let checked = 0;
  for (const [type, write, bytes, min, max] of intTypes) {
    const edges = [min, max, 0, 1, min + 1, max - 1, 255, 256, 65_535, 65_536, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -256, -(2 ** 31), -(2 ** 32) - 1];
    const random = Array.from({ length: 200 }, () => Math.floor(min + rnd() * (max - min)));
    const values = [...edges, ...random].filter((v) => Number.isSafeInteger(v) || Math.abs(v) >= 2 ** 53).filter((v) => v >= min && v <= max);
    const codec = rowBinaryCodec('t', new Map([['x', type]]), ['x'])!;
    const projection: RowProjection<number> = { columns: ['x'], plain: () => true, put: (v, w, p) => p[0]!(w, v), row: (v) => ({ x: v }) };
    const throughSlot: RowProjection<number> = { ...projection, put: (v, w, p) => p[0]!(w, slot(v)), row: () => assert.fail(`${type}: the slot's value was refused`) };
    for (const v of values) {
      const want = Buffer.alloc(bytes);
      write(want, v);
      assert.equal(codec.encode([{ x: v }]).toString('hex'), want.toString('hex'), `${type} ${v}`);
      assert.equal(codec.encodeProjected([v], projection).toString('hex'), want.toString('hex'), `${type} ${v}, projected`);
      assert.equal(codec.encodeProjected([v], throughSlot).toString('hex'), want.toString('hex'), `${type} ${v}, projected through the slot`);
      checked++;
    }
  }
  const f64 = rowBinaryCodec('t', new Map([['x', 'Float64']]), ['x'])!;
  for (const v of [0, -0, 1.5, -1e-300, 5e-324, Number.MAX_VALUE, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Math.PI, ...Array.from({ length: 100 }, () => (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40 - 20))]) {
    const want = Buffer.alloc(8);
    want.writeDoubleLE(v);
    assert.equal(f64.encode([{ x: v }]).toString('hex'), want.toString('hex'), `Float64 ${v}`);
    assert.equal(f64.encodeProjected([v], { columns: ['x'], plain: () => true, put: (x, w, p) => p[0]!(w, slot(x)), row: () => assert.fail(`Float64 ${v} refused`) }).toString('hex'), want.toString('hex'), `Float64 ${v} through the slot`);
    checked++;
  }
  assert.ok(checked > 1500, `${checked} values`);
});

test('RowBinary: a number through the slot (slot(x)) is x to every number putter, Nullable included; other putters refuse it, and a refused one goes the checked way', () => {
  const t = new Map([['f', 'Float32'], ['a', 'Array(Float64)'], ['n', 'Nullable(UInt32)'], ['s', 'String'], ['u', 'UInt8']]);
  type Item = { f: number; a: number[]; n: number; s: unknown; u: number };
  const codec = rowBinaryCodec('t', t, ['f', 'a', 'n', 's', 'u'])!;
  let checkedRows = 0;
  const p: RowProjection<Item> = {
    columns: ['f', 'a', 'n', 's', 'u'],
    plain: () => true,
    put: (x, w, q) => q[0]!(w, slot(x.f)) && q[1]!(w, x.a) && q[2]!(w, slot(x.n)) && q[3]!(w, x.s) && q[4]!(w, slot(x.u)),
    row: (x) => {
      checkedRows++;
      return { ...x };
    },
  };
  const items: Item[] = [
    { f: -0, a: [0.1, -0, 5e-324, 1e300], n: 4_000_000_000, s: 'vm', u: 255 },
    { f: 1.25, a: [], n: 0, s: '', u: 0 },
  ];
  assert.equal(codec.encodeProjected(items, p).toString('hex'), codec.encode(items).toString('hex'));
  assert.equal(checkedRows, 0);
  // A string column given IN_SLOT refuses it; the row is then encoded from row(x), which refuses 7 naming it.
  assert.equal(putterFor('String')!({ ensure() {}, off: 0 } as never, IN_SLOT), false);
  assert.throws(() => codec.encodeProjected([{ ...items[1]!, s: 7 }], { ...p, put: (x, w, q) => q[0]!(w, slot(x.f)) && q[1]!(w, x.a) && q[2]!(w, slot(x.n)) && q[3]!(w, slot(x.s as number)) && q[4]!(w, slot(x.u)) }), /t row 0 s=7 is not a valid String/);
  assert.equal(checkedRows, 1);
  // A value out of range through the slot is refused like the value itself.
  assert.throws(() => codec.encodeProjected([{ ...items[1]!, u: 256 }], p), /t row 0 u=256 is not a valid UInt8/);
});

test('RowBinary: a value that does not fit its column is refused with table, row, column and value', () => {
  const c = rowBinaryCodec('vm_samples', types, ['host', 'seq'])!;
  const refused = (rows: Record<string, unknown>[], re: RegExp) =>
    assert.throws(() => c.encode(rows), (e: unknown) => e instanceof WattsplitError && e.code === 'STORE_INVALID_INPUT' && re.test(e.message));
  refused([{ host: 'a', seq: 1 }, { host: 'b', seq: -1 }], /vm_samples row 1 seq=-1 is not a valid UInt64/);
  refused([{ host: 'a', seq: 1.5 }], /row 0 seq=1.5 is not a valid UInt64/);
  refused([{ host: 'a', seq: 2 ** 64 }], /seq=18446744073709552000 is not a valid UInt64/);
  refused([{ host: 'a', seq: '18446744073709551616' }], /seq="18446744073709551616" is not a valid UInt64/);
  refused([{ host: 'a', seq: '-1' }], /seq="-1" is not a valid UInt64/);
  refused([{ host: 'a', seq: '1e3' }], /seq="1e3" is not a valid UInt64/);
  refused([{ host: 7, seq: 1 }], /host=7 is not a valid LowCardinality\(String\)/);
  refused([{ host: 'a' }], /vm_samples row 0 has no seq/);
  // A Nullable column takes null or undefined as NULL, but a row without the key is still refused.
  const nullable = rowBinaryCodec('t', types, ['host', 'n'])!;
  assert.equal(nullable.encode([{ host: 'a', n: undefined }]).toString('hex'), '016101');
  assert.throws(() => nullable.encode([{ host: 'a', n: 3 }, { host: 'b' }]), /t row 1 has no n/);
  // The row that fails is the one named, whatever was encoded before it; the rows after it are not needed.
  assert.throws(() => c.encode([...Array.from({ length: 100 }, (_, i) => ({ host: `h${i}`, seq: i })), { host: 'x', seq: -2 }]), /row 100 seq=-2/);
  assert.throws(() => rowBinaryCodec('t', types, ['j'])!.encode([{ j: Number.NaN }]), /j=NaN is not a valid Float64/);
  assert.throws(() => rowBinaryCodec('t', types, ['ids'])!.encode([{ ids: ['a', 3] }]), /ids=\["a",3\] is not a valid Array\(String\)/);
});

test('RowBinary: unknown columns or types give no codec (the transport falls back to JSONEachRow)', () => {
  assert.equal(rowBinaryCodec('t', types, ['host', 'nope']), undefined);
  assert.equal(rowBinaryCodec('t', new Map([['m', 'Map(String, UInt8)']]), ['m']), undefined);
  assert.equal(putterFor('Decimal(10, 2)'), undefined);
  assert.ok(putterFor('Array(Array(Float32))'));
  assert.ok(putterFor('Date'));
});
