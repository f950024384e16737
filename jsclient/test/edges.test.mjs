// Edge cases of telegraphy.js: positions after a recovered:false answer,
// collections sharing a channel, subscriptions made from handlers, hostile
// input, close.
// Run by go test ./jsclient (TestNode), like the other node tests.
import { test } from "node:test";
import { Telegraphy } from "../telegraphy.js";
import { assert, chan, client, hubURL, ids, listen, position, publish, startHub, stopHub, token, until } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const timers = () => process.getActiveResourcesInfo().filter((r) => r == "Timeout").length;
const row = (type, ch, id, title, version) => ({
  channels: [ch], type, pk: id, data: type == "delete" || type == "leave" ? { id } : { id, title },
  ...(version === undefined ? {} : { version }),
});
const watch = (coll) => {
  coll.changes = [];
  coll.errors = [];
  coll.on("change", (c) => coll.changes.push(c));
  coll.on("error", (e) => coll.errors.push(e));
  return coll;
};
const rowIDs = (coll) => coll.rows.map((r) => r.id).sort((a, b) => a - b);

// docs/protocol.md: a since ahead of the channel gets recovered:false, and
// "live events follow from offset+1 either way" (e.g. a Redis restarted
// from an AOF that lost its last second keeps the epoch). The client takes
// the hub's lower position, so the next reconnect asks for the events
// after it and none is skipped.
test("recovered:false for a since ahead of the channel: position reset, no event silently skipped after a reconnect", async (t) => {
  const ch = chan();
  const c = await client([ch], { minDelay: 100, maxDelay: 300 });
  t.after(() => c.close());
  const p = await position(ch);
  const ahead = { epoch: p.epoch, offset: p.offset + 5 };
  const sub = await listen(c, ch, { since: ahead });
  assert.equal(sub.infos[0].recovered, false);
  assert.equal(sub.infos[0].offset, p.offset);
  const live = await publish(...[1, 2].map((i) => ({ channels: [ch], type: "create", data: { i } })));
  await until(() => sub.events.length == 2, 5000, "live events");
  const posAfterLive = sub.position;

  await stopHub();
  await until(() => c.state == "disconnected", 5000, "disconnected");
  const away = await publish(...[3, 4, 5, 6, 7, 8].map((i) => ({ channels: [ch], type: "create", data: { i } })));
  await startHub();
  await until(() => sub.infos.length == 2, 5000, "resubscribed");
  await sleep(100);
  assert.deepEqual({ ids: ids(sub), lost: sub.lost, posAfterLive },
    { ids: [...live, ...away].map((e) => e.id), lost: 1, posAfterLive: { epoch: p.epoch, offset: p.offset + 2 } },
    "events after the hub's answer were skipped without a lost");
});

// The same answer for a collection: the rendered position is ahead of
// the channel; the collection refetches on "lost", and its refetch answers
// rows without a position (allowed). New events are applied, not taken for
// events already in the rendered rows.
test("collection: after lost for a position ahead of the channel, new events are not dropped as already rendered", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const p = await position(ch);
  let refetches = 0;
  const coll = watch(c.collection(ch, {
    rows: [],
    position: { epoch: p.epoch, offset: p.offset + 5 },
    refetch: async () => (refetches++, []),
  }));
  await until(() => refetches == 1, 5000, "refetch on lost");
  await sleep(50);
  await publish(...[1, 2, 3, 4, 5, 6].map((i) => row("create", ch, i, "r" + i)));
  await until(() => coll.get(6), 5000, "the last row");
  assert.deepEqual(rowIDs(coll), [1, 2, 3, 4, 5, 6]);
});

// A subscribe made in a "state" handler on "connected" (e.g. a widget
// that starts once online) is sent once, not again by the welcome's
// resubscribe loop (the hub would refuse it as "already subscribed"):
// presence works, and leaving then subscribing again works.
test("subscribing from a 'connected' state handler subscribes once", async (t) => {
  const ch = chan("presence");
  const c = await client([ch]);
  t.after(() => c.close());
  let sub, subscribed = 0;
  const subErrors = [];
  c.on("state", (s) => {
    if (s == "connected" && !sub) {
      sub = c.subscribe(ch, { presence: true });
      sub.on("error", (e) => subErrors.push(e.code + ": " + e.message));
      sub.on("subscribed", () => subscribed++);
    }
  });
  await until(() => subscribed > 0, 5000, "subscribed");
  await sleep(200);
  let members;
  try {
    members = (await sub.presence()).map((m) => m.subject);
  } catch (e) {
    members = "rejected: " + e.code;
  }
  const entryState = c._ch.get(ch).state;
  // Leave and come back: with the entry at state 0 no unsubscribe is sent,
  // so the hub still has the channel and refuses the new subscribe.
  sub.unsubscribe();
  const again = c.subscribe(ch);
  const heardAgain = [];
  again.on("subscribed", () => heardAgain.push("subscribed"));
  again.on("error", (e) => heardAgain.push("error " + e.code));
  await until(() => heardAgain.length > 0, 5000, "second subscribe answered");
  assert.deepEqual({ clientErrors: c.record.errors.map((e) => e.code), subErrors, members, entryState, heardAgain },
    { clientErrors: [], subErrors: [], members: ["tester"], entryState: 2, heardAgain: ["subscribed"] });
});

// A collection over a channel another part of the page subscribed to
// (without since) before the client connected: the shared subscription
// starts later, without since, so the collection refetches only once the
// hub has confirmed it, and a write committed before then is in the rows.
test("collection over a shared channel not subscribed yet refetches once it is, and misses no row", async (t) => {
  const ch = chan();
  let release;
  const gate = new Promise((r) => (release = r));
  const c = new Telegraphy({
    url: await hubURL(),
    getToken: async () => (await gate, token("tester", [ch])),
    minDelay: 100,
    maxDelay: 300,
  });
  t.after(() => c.close());
  c.subscribe(ch); // e.g. a badge counting new orders
  const pos = await position(ch); // the page renders: position, then rows
  const db = []; // the app's table
  let refetches = 0;
  const coll = watch(c.collection(ch, { rows: [], position: pos, refetch: async () => (refetches++, db.slice()) }));
  await sleep(20);
  // A write committed after the collection was made, before the client is
  // subscribed: its event will not come, so the refetch must read after
  // the subscription.
  db.push({ id: 1, title: "one" });
  await publish(row("create", ch, 1, "one"));
  release();
  await until(() => c._ch.get(ch)?.state == 2, 5000, "subscribed");
  db.push({ id: 2, title: "two" });
  await publish(row("create", ch, 2, "two"));
  await until(() => coll.get(2), 5000, "row 2");
  await sleep(50);
  assert.deepEqual({ rows: rowIDs(coll), refetches }, { rows: [1, 2], refetches: 1 }, "the database holds rows 1 and 2");
});

// Telegraphy#close "clears every timer and handler: nothing fires
// afterwards", a collection's refetch retry included.
test("a collection's refetch retry does not outlive the client's close", async () => {
  const before = timers();
  const ch = chan();
  const c = await client([ch], { minDelay: 50, maxDelay: 100 });
  let calls = 0;
  const coll = watch(c.collection(ch, {
    rows: [],
    position: { epoch: "an-epoch-long-gone", offset: 3 },
    refetch: async () => {
      calls++;
      throw new Error("app down");
    },
  }));
  await until(() => calls >= 1, 5000, "first refetch");
  c.close();
  const atClose = calls, errorsAtClose = coll.errors.length;
  await sleep(700);
  const left = timers() - before;
  coll.close(); // lets the process end
  assert.deepEqual({ refetchesAfterClose: calls - atClose, errorsAfterClose: coll.errors.length - errorsAtClose, timersLeft: left },
    { refetchesAfterClose: 0, errorsAfterClose: 0, timersLeft: 0 });
});

// Unexpected server input: a message that is valid JSON but not an
// object ("null") is reported, nothing is thrown out of the socket's
// message handler, and the rest of the frame (here an event) is handled.
test("a 'null' line in a frame is reported, and the frame's other messages are still handled", async (t) => {
  const ch = chan();
  let injected = false;
  const uncaught = [];
  class Inject extends WebSocket {
    set onmessage(fn) {
      super.onmessage = fn && ((m) => {
        let data = String(m.data);
        if (!injected && data.includes('"type":"event"')) {
          injected = true;
          data = "null\n" + data;
        }
        try {
          fn({ data });
        } catch (e) {
          uncaught.push(String(e)); // what the socket's message handler threw
        }
      });
    }
    get onmessage() {
      return super.onmessage;
    }
  }
  const c = await client([ch], { WebSocket: Inject });
  t.after(() => c.close());
  const sub = await listen(c, ch);
  const [ev] = await publish({ channels: [ch], type: "create", data: {} });
  await until(() => injected, 5000, "the event frame");
  const [m] = await publish({ channels: [ch], type: "marker", data: null });
  await until(() => ids(sub).includes(m.id), 5000, "marker");
  assert.deepEqual({ ids: ids(sub), uncaught }, { ids: [ev.id, m.id], uncaught: [] });
});

// Collection.remove(pk) is documented as "as its event would be": a
// delete event records its version, so a late update of that version does
// not bring the row back, for a row the page removed itself too.
test("a late event does not bring back a row the page removed itself", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const pos = await position(ch);
  const coll = watch(c.collection(ch, {
    rows: [{ id: 1, title: "v5", v: 5 }, { id: 3, title: "v5", v: 5 }],
    position: pos,
    version: "v",
    refetch: () => assert.fail("refetch"),
  }));
  await until(() => c._ch.get(ch)?.state == 2, 5000, "subscribed");
  coll.remove(1); // the page deleted row 1; its delete event does not come back
  // Row 3 deleted by another tab: its delete event comes (version 5).
  // Then each row's late update of version 5, from another app process.
  await publish(row("delete", ch, 3, undefined, 5));
  await publish(row("update", ch, 1, "v5, late", 5), row("update", ch, 3, "v5, late", 5), row("create", ch, 9, "marker"));
  await until(() => coll.get(9), 5000, "marker");
  assert.deepEqual({ 1: coll.get(1), 3: coll.get(3) }, { 1: undefined, 3: undefined });
});

// A second subscribe() to a channel whose subscribe the hub refused asks
// the hub again, and hears its answer.
test("a second subscribe to a refused channel settles (subscribed or error)", async (t) => {
  const ok = chan(), secret = chan("secret");
  const c = await client([ok]);
  t.after(() => c.close());
  const first = c.subscribe(secret);
  await until(() => c.record.errors.length == 1, 5000, "forbidden");
  const second = c.subscribe(secret);
  const heard = [];
  second.on("error", (e) => heard.push("error " + e.code));
  second.on("subscribed", () => heard.push("subscribed"));
  await sleep(500);
  assert.ok(first);
  assert.deepEqual({ heard, hubErrors: c.record.errors.length }, { heard: ["error forbidden"], hubErrors: 2 });
});

// Asking for presence on a channel whose subscribe is still awaited
// subscribes again once the first answer has come, from its position: no
// event can go by between the two subscriptions, and the second answer
// recovers (nothing lost).
test("presence asked while the channel's subscribe is awaited resubscribes from the first answer's position", async (t) => {
  const ch = chan("presence");
  const sent = [];
  class Spy extends WebSocket {
    send(data) {
      for (const line of String(data).split("\n")) {
        const m = JSON.parse(line);
        if (m.channel == ch) sent.push(m);
      }
      return super.send(data);
    }
  }
  const c = await client([ch], { WebSocket: Spy });
  t.after(() => c.close());
  await until(() => c.state == "connected", 5000, "connected");
  const plain = c.subscribe(ch);
  const watching = c.subscribe(ch, { presence: true });
  const infos = [];
  watching.on("subscribed", (i) => infos.push(i));
  let lost = 0;
  plain.on("lost", () => lost++);
  const joins = [];
  watching.on("join", (m) => joins.push(m.subject));
  await until(() => infos.length == 2, 5000, "both answers");
  // The page's member list has its own subject; the hub announced no
  // leave and join for the resubscribe (within PresenceLeaveDelay).
  assert.deepEqual((await watching.presence()).map((m) => m.subject), ["tester"]);
  assert.deepEqual(joins, []);
  const first = infos[0];
  assert.deepEqual(sent.filter((m) => m.type != "presence").map(({ type, since, presence }) => ({ type, since, presence })), [
    { type: "subscribe", since: undefined, presence: undefined },
    { type: "unsubscribe", since: undefined, presence: undefined },
    { type: "subscribe", since: { epoch: first.epoch, offset: first.offset }, presence: true },
  ]);
  assert.deepEqual({ recovered: infos[1].recovered, lost }, { recovered: true, lost: 0 });
});
