#!/usr/bin/env node
// kafkajs 2.2 conformance scenarios for a Kafka wire-protocol broker: the same
// four scenarios as scenarios.py (see there), with kafkajs's own APIs.
//
//   node tests/conformance/scenarios.js --bootstrap HOST:PORT [--scenario N]... [--seed S]
//
// Codecs: none, gzip (native) and snappy (kafkajs-snappy, pure JS); lz4 and
// zstd need native codec plugins and are covered by the Python clients.
// kafkajs has no manual partition assignment, so every read goes through a
// fresh consumer group. Exit status 0 only when all passed; the last line is
// `conformance: N passed, N failed`.
'use strict'
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const crypto = require('crypto')
const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs')
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')

const DEADLINE_MS = 120000
const T0 = Date.now()

class Failure extends Error {}
const check = (cond, msg) => { if (!cond) throw new Failure(msg) }
const log = msg => console.log(`[${((Date.now() - T0) / 1000).toFixed(2).padStart(7)}s] ${msg}`)
const suffix = () => crypto.randomBytes(5).toString('hex')
const pause = ms => new Promise(resolve => setTimeout(resolve, ms))

// Poll cond() (may be async) until true; Failure after timeoutMs.
async function waitUntil (cond, what, timeoutMs = DEADLINE_MS) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) throw new Failure(`timed out after ${timeoutMs / 1000}s waiting for ${what}`)
    await pause(50) // poll interval only
  }
}

// Seeded PRNG (mulberry32) for the abort decisions.
function rng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// Java's default partitioner: (murmur2(key) & 0x7fffffff) % n
function murmur2 (data) {
  const m = 0x5bd1e995
  const r = 24
  let h = (0x9747b28c ^ data.length) >>> 0
  const len4 = data.length >> 2
  for (let i = 0; i < len4; i++) {
    const i4 = i * 4
    let k = (data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)) >>> 0
    k = Math.imul(k, m) >>> 0
    k = (k ^ (k >>> r)) >>> 0
    k = Math.imul(k, m) >>> 0
    h = Math.imul(h, m) >>> 0
    h = (h ^ k) >>> 0
  }
  const idx = data.length & ~3
  switch (data.length % 4) {
    case 3: h = (h ^ (data[idx + 2] << 16)) >>> 0 // falls through
    case 2: h = (h ^ (data[idx + 1] << 8)) >>> 0 // falls through
    case 1:
      h = (h ^ data[idx]) >>> 0
      h = Math.imul(h, m) >>> 0
  }
  h = (h ^ (h >>> 13)) >>> 0
  h = Math.imul(h, m) >>> 0
  h = (h ^ (h >>> 15)) >>> 0
  return h
}
const javaPartition = (key, n) => (murmur2(Buffer.from(key)) & 0x7fffffff) % n

// ------------------------------------------------------------------ client
let kafka, admin

async function createTopic (topic, numPartitions) {
  const created = await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }], waitForLeaders: true, timeout: 30000 })
  check(created, `topic ${topic} was not created`)
  await waitUntil(async () => {
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    const ps = md.topics[0].partitions
    return ps.length === numPartitions && ps.every(p => p.leader >= 0)
  }, `topic ${topic} with ${numPartitions} leaders`, 60000)
}

async function endOffsets (topic) {
  const r = await admin.fetchTopicOffsets(topic)
  const out = {}
  for (const p of r) out[p.partition] = Number(p.high)
  return out
}

// Send messages (in record order) with one producer.send per chunk; returns
// the [partition, offset] each record got (offsets = the batch's base offset
// + the record's index in its partition within that send).
async function produceAll (producer, topic, messages, { compression = CompressionTypes.None, chunk = 1000 } = {}) {
  const reports = []
  for (let start = 0; start < messages.length; start += chunk) {
    const part = messages.slice(start, start + chunk)
    const md = await producer.send({ topic, messages: part, acks: -1, compression })
    const base = {}
    for (const m of md) {
      check(m.errorCode === 0, `produce error ${m.errorCode} on ${topic}/${m.partition}`)
      base[m.partition] = Number(m.baseOffset)
    }
    // kafkajs assigns the partition inside send(); recompute it as it does.
    const n = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0].partitions.length
    const idx = {}
    for (const msg of part) {
      const p = msg.partition !== undefined ? msg.partition : javaPartition(msg.key, n)
      check(base[p] !== undefined, `no produce response for ${topic}/${p}`)
      idx[p] = (idx[p] || 0)
      reports.push([p, base[p] + idx[p]])
      idx[p]++
    }
  }
  return reports
}

// Read a topic from the beginning through a fresh group until done(records).
async function readUntil (topic, done, what, { readUncommitted = false, timeoutMs = DEADLINE_MS } = {}) {
  const consumer = kafka.consumer({ groupId: `conf-reader-${suffix()}`, readUncommitted })
  const got = []
  try {
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        got.push({ topic, partition, offset: Number(message.offset), key: message.key, value: message.value, headers: message.headers || {} })
      }
    })
    await waitUntil(() => done(got), what, timeoutMs)
  } finally {
    await consumer.disconnect()
  }
  return got
}

// Read all records up to the end offsets.
async function readTopic (topic, expect, opts = {}) {
  const ends = await endOffsets(topic)
  const total = Object.values(ends).reduce((a, b) => a + b, 0)
  check(total === expect, `end offsets of ${topic} sum to ${total}, produced ${expect}`)
  return readUntil(topic, got => got.length >= expect, `${expect} records from ${topic}`, opts)
}

const hdr = v => (Array.isArray(v) ? v : [v]).map(x => Buffer.from(x).toString('hex')).join(',')
const normHeaders = h => Object.keys(h).sort().map(k => `${k}=${hdr(h[k])}`).join(';')

// ------------------------------------------------------------------ scenario 1
async function scenarioRoundtrip (codecName, codec) {
  const parts = 3; const n = 300; const nkeys = 30
  const topic = `conf-roundtrip-${codecName}-${suffix()}`
  await createTopic(topic, parts)
  const messages = []
  for (let i = 0; i < n; i++) {
    messages.push({
      key: Buffer.from(`key-${i % nkeys}`),
      value: Buffer.concat([Buffer.from(`${codecName}-${i}-`), Buffer.alloc((i % 7) * 150, 'x')]),
      headers: { idx: Buffer.from(String(i)), codec: Buffer.from(codecName), dup: [Buffer.from('first'), Buffer.from('second')], bin: Buffer.from([0, 255, i % 256]) }
    })
  }
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let reports
  try {
    reports = await produceAll(producer, topic, messages, { compression: codec })
  } finally {
    await producer.disconnect()
  }
  const got = await readTopic(topic, n)
  check(got.length === n, `read ${got.length} records, produced ${n}`)
  const byIdx = new Map()
  for (const r of got) {
    check(r.headers.idx, `record without idx header at ${r.partition}@${r.offset}`)
    const i = Number(r.headers.idx.toString())
    check(!byIdx.has(i), `record ${i} read twice`)
    byIdx.set(i, r)
  }
  for (let i = 0; i < n; i++) {
    const r = byIdx.get(i); const m = messages[i]
    check(r, `record ${i} not read back`)
    check(Buffer.compare(r.key, m.key) === 0, `record ${i}: key ${r.key} != ${m.key}`)
    check(Buffer.compare(r.value, m.value) === 0, `record ${i}: value differs`)
    check(normHeaders(r.headers) === normHeaders(m.headers), `record ${i}: headers ${normHeaders(r.headers)} != ${normHeaders(m.headers)}`)
    const want = javaPartition(m.key, parts)
    check(r.partition === want, `record ${i}: partition ${r.partition}, murmur2 says ${want}`)
    check(reports[i][0] === r.partition && reports[i][1] === r.offset, `record ${i}: produced at ${reports[i]}, read at ${r.partition},${r.offset}`)
  }
  const counts = []
  for (let p = 0; p < parts; p++) {
    const offs = got.filter(r => r.partition === p).map(r => r.offset).sort((a, b) => a - b)
    check(offs.every((o, j) => o === j), `partition ${p}: offsets not contiguous from 0`)
    counts.push(offs.length)
  }
  log(`  ${codecName}: ${n} records over ${parts} partitions round-tripped (${JSON.stringify(counts)} per partition)`)
}

// ------------------------------------------------------------------ scenario 2
async function scenarioGroup () {
  const parts = 6; const batch = 300
  const topic = `conf-group-${suffix()}`; const groupId = `conf-group-${suffix()}`
  await createTopic(topic, parts)
  const assign = new Map() // member -> partitions (from its latest GROUP_JOIN)
  const seen = new Map() // value -> [[member, partition, offset]]
  const produced = []
  const members = new Map()
  const errors = []
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let seq = 0

  async function produceBatch () {
    const msgs = []
    for (let j = 0; j < batch; j++, seq++) msgs.push({ key: `k${seq % 97}`, value: `g-${seq}` })
    await produceAll(producer, topic, msgs)
    for (const m of msgs) produced.push(m.value)
  }

  async function startMember (name) {
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 })
    const m = { name, consumer, first: new Map() }
    members.set(name, m)
    consumer.on(consumer.events.GROUP_JOIN, e => { assign.set(name, (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)) })
    consumer.on(consumer.events.CRASH, e => { errors.push(`${name} crashed: ${e.payload.error}`) })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const v = message.value.toString(); const off = Number(message.offset)
        const a = assign.get(name) || []
        if (!a.includes(partition)) errors.push(`${name} got ${partition}@${off} outside its assignment ${a}`)
        if (!seen.has(v)) seen.set(v, [])
        seen.get(v).push([name, partition, off])
        if (!m.first.has(partition)) m.first.set(partition, off)
        await consumer.commitOffsets([{ topic, partition, offset: String(off + 1) }])
      }
    })
    return m
  }

  async function leave (name) {
    const m = members.get(name)
    members.delete(name)
    await m.consumer.disconnect()
    assign.delete(name)
    return m
  }

  function settled (k) {
    check(errors.length === 0, errors.join('; '))
    const active = [...members.keys()]
    if (active.length !== k || !active.every(n => assign.has(n))) return false
    const owned = active.flatMap(n => assign.get(n)).sort((a, b) => a - b)
    return owned.length === parts && owned.every((p, i) => p === i) && active.every(n => assign.get(n).length === parts / k)
  }
  async function settle (k, why) {
    await waitUntil(() => settled(k), `${k} member(s) owning all ${parts} partitions once (${why})`, 90000)
    log(`  settled after ${why}: ${JSON.stringify(Object.fromEntries([...members.keys()].map(n => [n, assign.get(n)])))}`)
  }
  async function consumeAll (why) {
    await waitUntil(() => { check(errors.length === 0, errors.join('; ')); return produced.every(v => seen.has(v)) },
      `all ${produced.length} records consumed (${why})`, 90000)
    check(settled(members.size), `assignment changed while consuming (${why})`)
  }

  try {
    for (const name of ['A', 'B', 'C']) {
      await produceBatch()
      await startMember(name)
      await settle(members.size, `${name} joined`)
      await consumeAll(`${name} joined`)
    }
    for (const name of ['A', 'B']) {
      await produceBatch()
      await leave(name)
      await settle(members.size, `${name} left`)
      await consumeAll(`${name} left`)
    }
    await leave('C')
    const committed = {}
    for (const t of await admin.fetchOffsets({ groupId, topics: [topic] })) {
      for (const p of t.partitions) committed[p.partition] = Number(p.offset)
    }
    const ends = await endOffsets(topic)
    check(JSON.stringify(committed) === JSON.stringify(ends), `after everyone left, committed ${JSON.stringify(committed)} != end offsets ${JSON.stringify(ends)}`)
    const before = produced.length
    await produceBatch()
    await startMember('D')
    await settle(1, 'D joined an empty group')
    await consumeAll('D joined')
    const d = await leave('D')
    for (const [p, off] of d.first) check(off === committed[p], `D started partition ${p} at ${off}, committed was ${committed[p]}`)
    const dValues = new Set([...seen].filter(([, s]) => s.some(x => x[0] === 'D')).map(([v]) => v))
    const after = produced.slice(before)
    check(dValues.size === after.length && after.every(v => dValues.has(v)), `D read ${dValues.size} records, ${after.length} were produced after everyone left`)
  } finally {
    for (const name of [...members.keys()]) await leave(name).catch(() => {})
    await producer.disconnect()
  }
  check(errors.length === 0, errors.join('; '))
  const dups = [...seen].filter(([, s]) => s.length > 1)
  check(dups.length === 0, `${dups.length} records seen more than once, e.g. ${JSON.stringify(dups.slice(0, 3))}`)
  const lost = produced.filter(v => !seen.has(v))
  check(lost.length === 0, `${lost.length} records never seen, e.g. ${lost.slice(0, 5)}`)
  check(seen.size === produced.length, `${seen.size - produced.length} records seen that were not produced`)
  const per = {}
  for (const [, s] of seen) per[s[0][0]] = (per[s[0][0]] || 0) + 1
  log(`  ${produced.length} records, each seen once; per member ${JSON.stringify(per)}`)
}

// ------------------------------------------------------------------ scenario 3
async function scenarioIdempotent () {
  const parts = 3; const n = 20000
  const topic = `conf-idem-${suffix()}`
  await createTopic(topic, parts)
  const messages = []
  for (let i = 0; i < n; i++) messages.push({ key: `k${i % 101}`, value: `idem-${i}` })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let reports
  try {
    reports = await produceAll(producer, topic, messages, { chunk: 500 })
  } finally {
    await producer.disconnect()
  }
  const got = await readTopic(topic, n, { timeoutMs: 180000 })
  check(got.length === n, `read ${got.length} records, produced ${n}`)
  const at = new Map()
  for (const r of got) {
    const i = Number(r.value.toString().split('-')[1])
    check(!at.has(i), `record ${i} read twice`)
    at.set(i, [r.partition, r.offset])
  }
  for (let i = 0; i < n; i++) {
    check(at.has(i), `record ${i} not read back`)
    check(at.get(i)[0] === reports[i][0] && at.get(i)[1] === reports[i][1], `record ${i}: acknowledged at ${reports[i]}, read at ${at.get(i)}`)
  }
  const counts = []
  for (let p = 0; p < parts; p++) {
    const inP = got.filter(r => r.partition === p).sort((a, b) => a.offset - b.offset)
    check(inP.every((r, j) => r.offset === j), `partition ${p}: offsets not contiguous`)
    const idx = inP.map(r => Number(r.value.toString().split('-')[1]))
    check(idx.every((v, j) => j === 0 || idx[j - 1] < v), `partition ${p}: records out of send order`)
    counts.push(inP.length)
  }
  log(`  ${n} records acknowledged once, read once, in send order (${JSON.stringify(counts)} per partition)`)
}

// ------------------------------------------------------------------ scenario 4
async function scenarioTransactions (random) {
  const parts = 3; const n = 1500; const maxBatch = 60; const pAbort = 0.3
  const sfx = suffix()
  const src = `conf-txn-in-${sfx}`; const dst = `conf-txn-out-${sfx}`; const groupId = `conf-txn-copier-${sfx}`
  await createTopic(src, parts)
  await createTopic(dst, parts)
  const plain = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await plain.connect()
  try {
    const msgs = []
    for (let i = 0; i < n; i++) msgs.push({ key: `k${i % 53}`, value: `in-${i}` })
    await produceAll(plain, src, msgs)
  } finally {
    await plain.disconnect()
  }

  const consumer = kafka.consumer({ groupId, readUncommitted: false })
  const txp = kafka.producer({ transactionalId: `conf-copier-${sfx}`, idempotent: true, maxInFlightRequests: 1 })
  const committedTxns = new Set(); const abortedTxns = new Set()
  let copied = 0; let txnNo = 0; let copierError = null
  try {
    await txp.connect()
    await consumer.connect()
    await consumer.subscribe({ topic: src, fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        try {
          for (let s = 0; s < batch.messages.length; s += maxBatch) {
            if (!isRunning() || isStale()) return
            const chunk = batch.messages.slice(s, s + maxBatch)
            const next = Number(chunk[chunk.length - 1].offset) + 1
            // Abort at random, then copy the same records again until committed.
            for (;;) {
              const no = ++txnNo
              const abort = random() < pAbort
              const txn = await txp.transaction()
              await txn.send({
                topic: dst,
                messages: chunk.map(m => ({ key: m.key, value: `${m.value}|txn=${no}`, partition: batch.partition, headers: { txn: String(no) } }))
              })
              await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: src, partitions: [{ partition: batch.partition, offset: String(next) }] }] })
              if (abort) {
                await txn.abort()
                abortedTxns.add(no)
                continue
              }
              await txn.commit()
              committedTxns.add(no)
              break
            }
            copied += chunk.length
            resolveOffset(chunk[chunk.length - 1].offset)
            await heartbeat()
          }
        } catch (e) {
          copierError = copierError || e
          throw e
        }
      }
    })
    await waitUntil(() => { if (copierError) throw copierError; return copied >= n }, `copier to copy ${n} records (${copied} so far)`, 240000)
  } finally {
    await consumer.disconnect()
    await txp.disconnect()
  }
  log(`  copier: ${committedTxns.size} transactions committed, ${abortedTxns.size} aborted`)
  check(copied === n, `copier copied ${copied} records, input has ${n}`)
  const committed = {}
  for (const t of await admin.fetchOffsets({ groupId, topics: [src] })) {
    for (const p of t.partitions) committed[p.partition] = Number(p.offset)
  }
  const ends = await endOffsets(src)
  check(JSON.stringify(committed) === JSON.stringify(ends), `group ${groupId} committed ${JSON.stringify(committed)}, input end offsets ${JSON.stringify(ends)}`)
  check(abortedTxns.size > 0, 'no transaction was aborted (the scenario needs some)')

  // A fence after every transaction: one plain record per output partition.
  const fence = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await fence.connect()
  try {
    await produceAll(fence, dst, [...Array(parts).keys()].map(p => ({ key: 'end', value: 'END', partition: p })))
  } finally {
    await fence.disconnect()
  }
  const toFences = got => got.filter(r => r.value.toString() === 'END').length >= parts

  const got = await readUntil(dst, toFences, `the END fence in all ${parts} partitions of ${dst} (read_committed)`)
  const seenIn = new Map()
  for (const r of got) {
    const s = r.value.toString()
    if (s === 'END') continue
    const cut = s.lastIndexOf('|txn=')
    const v = s.slice(0, cut); const t = Number(s.slice(cut + 5))
    check(!abortedTxns.has(t), `read_committed saw a record of aborted transaction ${t}: ${s}`)
    check(committedTxns.has(t), `record of unknown transaction ${t}: ${s}`)
    check(!seenIn.has(v), `input record ${v} appears twice in the output`)
    seenIn.set(v, r)
  }
  const missing = []
  for (let i = 0; i < n; i++) if (!seenIn.has(`in-${i}`)) missing.push(i)
  check(missing.length === 0, `${missing.length} input records missing from the output, e.g. ${missing.slice(0, 5)}`)

  const raw = await readUntil(dst, toFences, `the END fence in all ${parts} partitions of ${dst} (read_uncommitted)`, { readUncommitted: true })
  const abortedSeen = raw.filter(r => {
    const s = r.value.toString()
    return s !== 'END' && abortedTxns.has(Number(s.slice(s.lastIndexOf('|txn=') + 5)))
  }).length
  check(abortedSeen > 0, 'read_uncommitted saw no aborted record although transactions were aborted')
  log(`  read_committed: ${n} input records exactly once, no aborted record; read_uncommitted sees ${abortedSeen} aborted records`)
}

// ------------------------------------------------------------------ main
async function main () {
  const args = process.argv.slice(2)
  let bootstrap = null; let seed = null; const wanted = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--bootstrap') bootstrap = args[++i]
    else if (args[i] === '--scenario') wanted.push(Number(args[++i]))
    else if (args[i] === '--seed') seed = Number(args[++i])
    else { console.error(`unknown argument ${args[i]}`); process.exit(2) }
  }
  if (!bootstrap) { console.error('usage: node scenarios.js --bootstrap HOST:PORT [--scenario N]... [--seed S]'); process.exit(2) }
  if (wanted.length === 0) wanted.push(1, 2, 3, 4)
  if (seed === null) seed = crypto.randomInt(1 << 30)
  const version = require('kafkajs/package.json').version
  kafka = new Kafka({
    clientId: 'sluice-conformance',
    brokers: [bootstrap],
    logLevel: process.env.KAFKAJS_LOG ? logLevel.INFO : logLevel.NOTHING,
    retry: { retries: 8 }
  })
  admin = kafka.admin()
  await admin.connect()
  log(`kafkajs ${version} against ${bootstrap}, seed ${seed}`)

  const results = []
  async function run (name, fn, ...a) {
    log(`== kafkajs scenario ${name}`)
    const t = Date.now()
    try {
      await fn(...a)
      results.push([name, 'pass', ''])
      log(`PASS kafkajs scenario ${name} (${((Date.now() - t) / 1000).toFixed(1)}s)`)
    } catch (e) {
      if (!(e instanceof Failure)) console.error(e)
      results.push([name, 'fail', e instanceof Failure ? e.message : String(e)])
      log(`FAIL kafkajs scenario ${name} (${((Date.now() - t) / 1000).toFixed(1)}s): ${results[results.length - 1][2]}`)
    }
  }
  if (wanted.includes(1)) {
    await run('1 round trip [none]', scenarioRoundtrip, 'none', CompressionTypes.None)
    await run('1 round trip [gzip]', scenarioRoundtrip, 'gzip', CompressionTypes.GZIP)
    await run('1 round trip [snappy]', scenarioRoundtrip, 'snappy', CompressionTypes.Snappy)
  }
  if (wanted.includes(2)) await run('2 consumer group rebalance + committed offsets', scenarioGroup)
  if (wanted.includes(3)) await run('3 idempotent producer', scenarioIdempotent)
  if (wanted.includes(4)) await run('4 transactional copier', scenarioTransactions, rng(seed))
  await admin.disconnect()

  const passed = results.filter(r => r[1] === 'pass').length
  const failed = results.filter(r => r[1] === 'fail').length
  for (const [name, status, detail] of results) if (status === 'fail') console.log(`FAILED: kafkajs scenario ${name}: ${detail}`)
  console.log(`conformance: ${passed} passed, ${failed} failed`)
  return failed === 0 ? 0 : 1
}

main().then(code => process.exit(code), e => {
  console.error(e)
  console.log('conformance: 0 passed, 1 failed')
  process.exit(1)
})
