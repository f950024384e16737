// Live collections of telegraphy.js (t.collection) against a real hub; run
// by go test ./jsclient, one file at a time (a test here stops the hub).
import { test } from "node:test";
import { assert, chan, client, position, publish, publishTo, startHub, stopHub, until } from "./helpers.mjs";

// A model event of the row {id, title}; version is its meta.version.
const row = (type, ch, id, title, version) => ({
  channels: [ch], type, pk: id, data: type == "delete" || type == "leave" ? { id } : { id, title },
  ...(version === undefined ? {} : { version }),
});

// watch records a collection's "change" events and errors.
function watch(coll) {
  coll.changes = [];
  coll.errors = [];
  coll.on("change", (c) => coll.changes.push(c));
  coll.on("error", (e) => coll.errors.push(e));
  return coll;
}

const titles = (coll) => Object.fromEntries(coll.rows.map((r) => [r.id, r.title]));
const ids = (rows) => rows.map((r) => r.id);

// A refetch whose answer the test gives: each call returns a promise that
// the test resolves (or rejects) with answer.resolve(value).
function manualRefetch() {
  const calls = [];
  const refetch = () => new Promise((resolve, reject) => calls.push({ resolve, reject }));
  return { calls, refetch };
}

test("starts from the rendered rows and applies the events after their position, one change per batch", async (t) => {
  const ch = chan("shop.Order");
  const c = await client([ch]);
  t.after(() => c.close());
  // The page renders: position first, then the rows.
  const pos = await position(ch);
  const rendered = [{ id: 1, title: "one" }, { id: 2, title: "two" }];
  // Committed after the render, before the script ran.
  await publish(row("create", ch, 3, "three"), row("update", ch, 2, "two, edited"), row("delete", ch, 1));
  const coll = watch(c.collection(ch, { rows: rendered, position: pos, refetch: () => assert.fail("refetch") }));
  assert.deepEqual(coll.rows, rendered);
  assert.deepEqual(coll.get(1), { id: 1, title: "one" });
  // The subscribe reply carries the three missed events: one batch.
  await until(() => coll.changes.length > 0, 5000, "change");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(coll.changes.length, 1, JSON.stringify(coll.changes));
  assert.deepEqual(coll.changes[0], {
    added: [{ id: 3, title: "three" }],
    updated: [{ id: 2, title: "two, edited" }],
    removed: [{ id: 1, title: "one" }],
  });
  assert.deepEqual(titles(coll), { 2: "two, edited", 3: "three" });
  assert.equal(coll.get(1), undefined);

  // Live: enter puts a row like a create, leave removes it like a delete.
  await publish(row("enter", ch, 9, "moved in"));
  await until(() => coll.get(9), 5000, "enter");
  await publish(row("leave", ch, 2), { channels: [ch], type: "note", data: { text: "custom events are not rows" } });
  await until(() => !coll.get(2), 5000, "leave");
  assert.deepEqual(titles(coll), { 3: "three", 9: "moved in" });
  assert.deepEqual(coll.changes.slice(1).map((x) => [ids(x.added), ids(x.updated), ids(x.removed)]), [[[9], [], []], [[], [], [2]]]);
  assert.deepEqual(coll.errors, []);
  assert.deepEqual(c.record.errors, []);
});

test("events at or before the rendered position are ignored", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const p0 = await position(ch);
  await publish(row("create", ch, 1, "first"), row("update", ch, 1, "second"), row("create", ch, 2, "other"), row("delete", ch, 2));
  // The page rendered after those four: its rows already hold them.
  const p4 = await position(ch);
  assert.equal(p4.offset, p0.offset + 4);
  // Another part of the page listens from an older position, so the hub
  // does send the four events to this client.
  const other = c.subscribe(ch, { since: p0 });
  const seen = [];
  other.on("*", (ev) => seen.push(ev.meta.event_type));
  const coll = watch(c.collection(ch, { rows: [{ id: 1, title: "rendered" }], position: p4, refetch: () => assert.fail("refetch") }));
  await until(() => seen.length == 4, 5000, "the four events");
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(coll.changes, []);
  assert.deepEqual(coll.rows, [{ id: 1, title: "rendered" }]);
  // The event after the position changes the rows.
  await publish(row("update", ch, 1, "after"));
  await until(() => coll.changes.length == 1, 5000, "change");
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(seen, ["create", "update", "create", "delete", "update"]);
  assert.deepEqual(coll.changes, [{ added: [], updated: [{ id: 1, title: "after" }], removed: [] }]);
  assert.deepEqual(coll.rows, [{ id: 1, title: "after" }]);
});

test("bulk events refetch, and events during the refetch are applied once, on top", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const pos = await position(ch);
  const { calls, refetch } = manualRefetch();
  const coll = watch(c.collection(ch, { rows: [{ id: 1, title: "a" }, { id: 2, title: "b" }], position: pos, refetch }));
  const seen = [];
  c.subscribe(ch).on("*", (ev, info) => seen.push(info.offset));

  await publish({ channels: [ch], type: "bulk_update", data: null });
  await until(() => calls.length == 1, 5000, "refetch on bulk_update");
  // While the refetch is in flight: one event its answer includes, one it
  // does not.
  await publish(row("update", ch, 2, "b2"));
  const inAnswer = await position(ch);
  await publish(row("create", ch, 3, "c"));
  await until(() => seen.length == 3, 5000, "events during the refetch");
  assert.deepEqual(coll.changes, [], "events applied while the refetch was in flight");
  // The answer: the rows as of inAnswer (the bulk update renamed 1; the
  // update of 2 is in it, with a marker showing it is not applied again).
  calls[0].resolve({ position: inAnswer, rows: [{ id: 1, title: "A" }, { id: 2, title: "b2 as read" }] });
  await until(() => coll.changes.length == 1, 5000, "change");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(coll.changes.length, 1);
  assert.deepEqual(coll.changes[0], {
    added: [{ id: 3, title: "c" }],
    updated: [{ id: 1, title: "A" }, { id: 2, title: "b2 as read" }],
    removed: [],
  });
  assert.deepEqual(titles(coll), { 1: "A", 2: "b2 as read", 3: "c" });

  // bulk_delete too; a refetch answering only rows (no position) gets
  // every event that came meanwhile replayed on it.
  await publish({ channels: [ch], type: "bulk_delete", data: null });
  await until(() => calls.length == 2, 5000, "refetch on bulk_delete");
  await publish(row("update", ch, 3, "c2"), row("create", ch, 4, "d"));
  await until(() => seen.length == 6, 5000, "events during the second refetch");
  calls[1].resolve([{ id: 3, title: "c" }]);
  await until(() => coll.changes.length == 2, 5000, "second change");
  assert.deepEqual(coll.changes[1], {
    added: [{ id: 4, title: "d" }],
    updated: [{ id: 3, title: "c2" }],
    removed: [{ id: 1, title: "A" }, { id: 2, title: "b2 as read" }],
  });
  assert.deepEqual(titles(coll), { 3: "c2", 4: "d" });
  assert.deepEqual(coll.errors, []);
});

test("a position the hub cannot serve is lost: the collection refetches, and retries a failed refetch", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  let n = 0;
  const coll = watch(c.collection(ch, {
    rows: [{ id: 1, title: "stale" }],
    position: { epoch: "an-epoch-long-gone", offset: 7 },
    refetch: async () => {
      if (++n == 1) throw new Error("app down");
      if (n == 2) return { error: "not rows" };
      return [{ id: 2, title: "fresh" }];
    },
  }));
  await until(() => coll.changes.length == 1, 10000, "refetched");
  assert.equal(n, 3);
  assert.deepEqual(coll.errors.map((e) => [e.code, e.cause.message]), [["refetch", "app down"], ["refetch", "no rows in the answer"]]);
  assert.deepEqual(coll.changes[0], { added: [{ id: 2, title: "fresh" }], updated: [], removed: [{ id: 1, title: "stale" }] });
  // Live events continue after the refetch.
  await publish(row("update", ch, 2, "fresher"));
  await until(() => coll.get(2).title == "fresher", 5000, "live event");
});

test("a refetch on lost mid-stream", async (t) => {
  const ch = chan();
  const c = await client([ch], {}, "lossy");
  t.after(() => c.close());
  const all = Array.from({ length: 201 }, (_, i) => ({ id: i + 1, title: i == 200 ? "last" : "r" + (i + 1) }));
  let refetches = 0;
  // The broker drops most of the burst; each gap the hub reports is a
  // lost, and each lost a refetch, answered with every row.
  const coll = watch(c.collection(ch, { rows: [], refetch: async () => (refetches++, all) }));
  const sub = c.subscribe(ch);
  let subscribed = false;
  sub.on("subscribed", () => (subscribed = true));
  await until(() => subscribed, 5000, "subscribed");
  const items = [];
  for (let i = 1; i <= 200; i++) items.push(row("create", ch, i, "r" + i));
  await publishTo("lossy", ...items);
  await publishTo("lossy", row("create", ch, 201, "last"));
  await until(() => coll.rows.length == 201, 5000, "every row");
  assert.ok(refetches >= 1);
  assert.deepEqual(coll.rows.map((r) => r.id).sort((a, b) => a - b), all.map((r) => r.id));
});

test("across a hub restart events apply in order, and a refetch in flight meanwhile loses none", async (t) => {
  const ch = chan();
  const c = await client([ch], { minDelay: 100, maxDelay: 300 });
  t.after(() => c.close());
  const pos = await position(ch);
  const { calls, refetch } = manualRefetch();
  const coll = watch(c.collection(ch, { rows: [{ id: 1, title: "a" }, { id: 2, title: "b" }], position: pos, refetch }));
  const listener = c.subscribe(ch);
  await publish(row("update", ch, 1, "a1"));
  await until(() => coll.get(1).title == "a1", 5000, "live event");

  await stopHub();
  await until(() => c.state == "disconnected", 5000, "disconnected");
  // Committed while the client is away, in this order.
  await publish(row("create", ch, 3, "c"), row("update", ch, 3, "c1"), row("update", ch, 2, "b1"),
    row("update", ch, 2, "b2"), row("delete", ch, 1), row("update", ch, 3, "c2"));
  await startHub();
  await until(() => c.state == "connected", 5000, "reconnected");
  await until(() => coll.get(3)?.title == "c2", 5000, "recovered events");
  assert.deepEqual(titles(coll), { 2: "b2", 3: "c2" });
  // One batch for what was missed (the subscribe reply).
  assert.equal(coll.changes.length, 2, JSON.stringify(coll.changes));
  assert.deepEqual(coll.changes[1], { added: [{ id: 3, title: "c2" }], updated: [{ id: 2, title: "b2" }], removed: [{ id: 1, title: "a1" }] });

  // A bulk update starts a refetch; the hub restarts before it answers.
  await publish({ channels: [ch], type: "bulk_update", data: null });
  await until(() => calls.length == 1, 5000, "refetch");
  await stopHub();
  await until(() => c.state == "disconnected", 5000, "disconnected again");
  await publish(row("update", ch, 2, "b3"), row("create", ch, 4, "d"));
  await startHub();
  await until(() => c.state == "connected", 5000, "reconnected again");
  await publish(row("delete", ch, 3));
  await until(() => listener.position?.offset == pos.offset + 11, 5000, "every event received");
  assert.equal(coll.changes.length, 2, "applied while the refetch was in flight");
  // The answer was read before any of the three.
  calls[0].resolve([{ id: 2, title: "B" }, { id: 3, title: "C" }]);
  await until(() => coll.changes.length == 3, 5000, "change");
  assert.deepEqual(titles(coll), { 2: "b3", 4: "d" });
  assert.deepEqual(coll.errors, []);
});

test("with versions, an event older than the row held is dropped", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const pos = await position(ch);
  const coll = watch(c.collection(ch, {
    // The page renders times as Go's encoding/json does: its own zone and
    // digits. meta.version is UTC with nine digits.
    rows: [{ id: 1, title: "v5", v: 5 }, { id: 2, title: "t2", at: "2026-03-04T06:06:07.5+01:00" }],
    position: pos,
    version: (r) => r.v ?? r.at,
    refetch: () => assert.fail("refetch"),
  }));
  // Each step publishes, then a marker row; once the marker is in, the
  // step's events have been handled.
  let marker = 100;
  const step = async (...items) => {
    const m = ++marker;
    await publish(...items, row("create", ch, m, "marker"));
    await until(() => coll.get(m), 5000, "marker " + m);
    return titles(coll);
  };
  let now = await step(row("update", ch, 1, "v4, late", 4));
  assert.equal(now[1], "v5", "older than the rendered row");
  now = await step(row("update", ch, 1, "v6", 6), row("update", ch, 1, "v5, late", 5));
  assert.equal(now[1], "v6");
  now = await step(row("update", ch, 1, "v6 again", 6));
  assert.equal(now[1], "v6 again", "an event of the version held applies");
  now = await step(row("update", ch, 2, "t1, late", "2026-03-04T05:06:07.499999999Z"));
  assert.equal(now[2], "t2", "older than the rendered time");
  now = await step(row("update", ch, 2, "t3", "2026-03-04T05:06:07.500000001Z"));
  assert.equal(now[2], "t3", "a nanosecond newer than the rendered time");
  now = await step(row("delete", ch, 1, undefined, 7), row("update", ch, 1, "v6 after its delete", 6));
  assert.equal(now[1], undefined, "a late update brought a deleted row back");
  now = await step(row("create", ch, 1, "v7, the delete's version", 7));
  assert.equal(now[1], undefined, "not newer than the delete");
  now = await step(row("create", ch, 1, "v8, created again", 8));
  assert.equal(now[1], "v8, created again");
  now = await step(row("delete", ch, 1, undefined, 7));
  assert.equal(now[1], "v8, created again", "a late delete removed a newer row");
  // Without a version, events apply in the order they come.
  now = await step(row("update", ch, 2, "no version"));
  assert.equal(now[2], "no version");
  assert.deepEqual(coll.errors, []);
});

test("a refetched row without a version keeps the version held", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const pos = await position(ch);
  const { calls, refetch } = manualRefetch();
  const coll = watch(c.collection(ch, { rows: [], position: pos, refetch }));
  await publish(row("create", ch, 1, "v5", 5));
  await until(() => coll.get(1), 5000, "create");
  await publish({ channels: [ch], type: "bulk_update", data: null });
  await until(() => calls.length == 1, 5000, "refetch");
  calls[0].resolve([{ id: 1, title: "as read" }]);
  await until(() => coll.get(1).title == "as read", 5000, "refetched");
  await publish(row("update", ch, 1, "v4, late", 4), row("create", ch, 2, "marker"));
  await until(() => coll.get(2), 5000, "marker");
  assert.equal(coll.get(1).title, "as read");
});
