// Tests of telegraphy.js against a real hub; run by go test ./jsclient.
import { test } from "node:test";
import { Telegraphy, TelegraphyError } from "../telegraphy.js";
import { assert, chan, client, hubURL, ids, listen, position, publish, publishTo, token, until } from "./helpers.mjs";

test("connects, subscribes and hands each event to its type and to *", async (t) => {
  const ch = chan("shop.Order");
  const c = await client([ch]);
  t.after(() => c.close());
  const sub = await listen(c, ch);
  assert.deepEqual(c.record.states, ["connecting", "connected"]);
  assert.equal(c.state, "connected");
  assert.equal(c.subject, "tester");
  assert.equal(sub.infos[0].recovered, true);
  assert.equal(typeof sub.infos[0].epoch, "string");

  const creates = [], updates = [];
  sub.on("create", (ev) => creates.push(ev));
  sub.on("update", (ev) => updates.push(ev));
  const [a, b] = await publish(
    { channels: [ch], type: "create", data: { id: 1, status: "new" } },
    { channels: [ch], type: "update", data: { id: 1, status: "paid" } },
  );
  await until(() => sub.events.length == 2, 5000, "two events");
  assert.deepEqual(ids(sub), [a.id, b.id]);
  assert.deepEqual(creates.map((e) => e.data), [{ id: 1, status: "new" }]);
  assert.deepEqual(updates.map((e) => e.meta.id), [b.id]);
  assert.equal(sub.events[0].info.channel, ch);
  assert.equal(sub.events[1].info.offset, sub.events[0].info.offset + 1);
  assert.deepEqual(sub.position, { epoch: sub.infos[0].epoch, offset: sub.events[1].info.offset });
  assert.deepEqual(c.record.errors, []);
});

test("reads frames that hold several messages", async (t) => {
  const ch = chan();
  let frames = 0, multi = 0;
  // Counts the frames the hub sends, to be sure the batched path ran.
  class Counting extends WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener("message", (m) => {
        frames++;
        if (String(m.data).trim().includes("\n")) multi++;
      });
    }
  }
  const c = await client([ch], { WebSocket: Counting });
  t.after(() => c.close());
  const sub = await listen(c, ch);
  const items = [];
  for (let i = 0; i < 300; i++) items.push({ channels: [ch], type: "create", data: { i } });
  const sent = await publish(...items);
  await until(() => sub.events.length == 300, 10000, "300 events");
  assert.deepEqual(ids(sub), sent.map((e) => e.id), "every event, once, in order");
  assert.ok(multi > 0, `no frame held more than one message (${frames} frames)`);
});

test("hands an event to the handlers once, by meta.id", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const sub = await listen(c, ch);
  // The same event published three times under different broker ids, as a
  // retrying publisher might: the hub delivers it three times.
  const [ev] = await publish({ channels: [ch], type: "create", data: { n: 1 }, eventID: "x1" });
  await publish({ channels: [ch], type: "create", data: { n: 1 }, id: ev.id, eventID: "x2" },
    { channels: [ch], type: "create", data: { n: 1 }, id: ev.id, eventID: "x3" });
  const [marker] = await publish({ channels: [ch], type: "marker", data: null });
  await until(() => ids(sub).includes(marker.id), 5000, "marker");
  assert.deepEqual(ids(sub), [ev.id, marker.id]);
  assert.equal(sub.position.offset, sub.infos[0].offset + 4, "the duplicates still advance the position");
});

test("an event on two channels reaches a subscription to each", async (t) => {
  const a = chan(), b = chan();
  const c = await client([a, b]);
  t.after(() => c.close());
  const sa = await listen(c, a), sb = await listen(c, b);
  const [ev] = await publish({ channels: [a, b], type: "create", data: {} });
  await until(() => sa.events.length == 1 && sb.events.length == 1, 5000, "event on both");
  assert.equal(sa.events[0].ev.meta.id, ev.id);
  assert.equal(sb.events[0].ev.meta.id, ev.id);
});

test("two subscriptions to one channel share it; unsubscribing one keeps the other", async (t) => {
  const ch = chan(), other = chan();
  const c = await client([ch, other]);
  t.after(() => c.close());
  const s1 = await listen(c, ch), s2 = await listen(c, ch), so = await listen(c, other);
  const [e1] = await publish({ channels: [ch], type: "create", data: {} });
  await until(() => s1.events.length == 1 && s2.events.length == 1, 5000, "event on both subscriptions");
  s1.unsubscribe();
  const [e2] = await publish({ channels: [ch], type: "create", data: {} });
  await until(() => s2.events.length == 2, 5000, "second event");
  assert.deepEqual(ids(s1), [e1.id]);
  s2.unsubscribe();
  s2.unsubscribe(); // twice is harmless
  // The channel has left the hub: an event on it, then one on another
  // channel (delivered in order on the same connection) shows nothing came.
  await publish({ channels: [ch], type: "create", data: {} });
  const [m] = await publish({ channels: [other], type: "marker", data: null });
  await until(() => ids(so).includes(m.id), 5000, "marker");
  assert.deepEqual(ids(s2), [e1.id, e2.id]);
  assert.deepEqual(c.record.errors, []);
});

test("subscribing with since delivers the events after it", async (t) => {
  const ch = chan();
  await position(ch);
  const first = await publish(
    { channels: [ch], type: "create", data: { n: 1 } },
    { channels: [ch], type: "create", data: { n: 2 } },
    { channels: [ch], type: "create", data: { n: 3 } },
  );
  const c = await client([ch]);
  t.after(() => c.close());
  const probe = await listen(c, ch);
  const { epoch, offset } = probe.infos[0];
  probe.unsubscribe();
  const sub = await listen(c, ch, { since: { epoch, offset: offset - 2 } });
  assert.deepEqual(ids(sub), first.slice(1).map((e) => e.id));
  assert.equal(sub.infos[0].recovered, true);
  assert.equal(sub.lost, 0);
});

test("positions given to the constructor are used as since", async (t) => {
  const ch = chan();
  const c0 = await client([ch]);
  const probe = await listen(c0, ch);
  c0.close();
  const [ev] = await publish({ channels: [ch], type: "create", data: {} });
  const c = await client([ch], { positions: { [ch]: { epoch: probe.infos[0].epoch, offset: probe.infos[0].offset } } });
  t.after(() => c.close());
  const sub = await listen(c, ch);
  assert.deepEqual(ids(sub), [ev.id], "the event published before subscribing arrives");
});

test("lost when the hub cannot recover the position", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const sub = await listen(c, ch, { since: { epoch: "gone", offset: 7 } });
  assert.equal(sub.lost, 1);
  assert.equal(sub.infos[0].recovered, false);
  // Live delivery goes on after a loss.
  const [ev] = await publish({ channels: [ch], type: "create", data: {} });
  await until(() => sub.events.length == 1, 5000, "event after lost");
  assert.equal(sub.events[0].ev.meta.id, ev.id);
});

test("lost when the hub drops events it cannot recover, and delivery goes on", async (t) => {
  const ch = chan();
  const c = await client([ch], {}, "lossy");
  t.after(() => c.close());
  const sub = await listen(c, ch);
  const lost = [];
  sub.on("lost", (info) => lost.push(info));
  const items = [];
  for (let i = 0; i < 200; i++) items.push({ channels: [ch], type: "create", data: { i } });
  await publishTo("lossy", ...items);
  // The hub notices the gap at the latest with the next event it gets.
  const [m] = await publishTo("lossy", { channels: [ch], type: "marker", data: null });
  await until(() => ids(sub).includes(m.id), 5000, "marker");
  assert.ok(lost.length >= 1, "no lost after a burst the broker dropped");
  assert.equal(lost[0].recovered, false);
  assert.ok(sub.events.length < 201, `all ${sub.events.length} events arrived: nothing was dropped`);
  assert.equal(sub.position.offset, sub.events.at(-1).info.offset);
  assert.equal(sub.infos.length, 1, "a gap is not a resubscribe");
  assert.equal(c.state, "connected");
});

test("protocol errors reach error handlers with their code", async (t) => {
  const ch = chan();
  const c = await client([ch]);
  t.after(() => c.close());
  const subErrors = [];
  const sub = c.subscribe(chan("secret"));
  sub.on("error", (e) => subErrors.push(e));
  let got = 0;
  sub.on("*", () => got++);
  await until(() => c.record.errors.length == 1, 5000, "forbidden");
  const err = c.record.errors[0];
  assert.ok(err instanceof TelegraphyError);
  assert.equal(err.code, "forbidden");
  assert.equal(err.channel, sub.channel);
  assert.deepEqual(subErrors, [err]);
  await publish({ channels: [sub.channel], type: "create", data: {} });
  const ok = await listen(c, ch);
  const [m] = await publish({ channels: [ch], type: "marker", data: null });
  await until(() => ids(ok).includes(m.id), 5000, "marker");
  assert.equal(got, 0, "an event of a forbidden channel was delivered");
  assert.equal(c.state, "connected");
});

test("a refused token is reported as unauthorized and retried with getToken", async (t) => {
  const ch = chan();
  const url = await hubURL();
  const errors = [];
  let asked = 0;
  const c = new Telegraphy({
    url,
    token: "not-a-jwt",
    getToken: () => (++asked == 1 ? Promise.reject(new Error("login expired")) : token("tester", [ch])),
    minDelay: 50,
    maxDelay: 100,
  });
  t.after(() => c.close());
  c.on("error", (e) => errors.push(e.code));
  const sub = await listen(c, ch);
  assert.deepEqual(errors.slice(0, 2), ["unauthorized", "token"]);
  assert.equal(asked, 2);
  assert.equal(sub.infos[0].recovered, true);
});

test("a getToken that never answers is given up after connectTimeout and asked again", async (t) => {
  const ch = chan();
  const url = await hubURL();
  let asked = 0;
  const c = new Telegraphy({
    url,
    getToken: () => (++asked == 1 ? new Promise(() => {}) : token("tester", [ch])),
    connectTimeout: 300,
    minDelay: 50,
    maxDelay: 100,
  });
  t.after(() => c.close());
  const sub = await listen(c, ch);
  assert.equal(asked, 2);
  assert.equal(sub.infos.length, 1);
});

test("pings answered by the hub keep the connection", async (t) => {
  const ch = chan();
  let pings = 0;
  class Counting extends WebSocket {
    send(data) {
      if (JSON.parse(data).type == "ping") pings++;
      super.send(data);
    }
  }
  // A pong must come within one interval: keep it long enough for a
  // loaded machine.
  const c = await client([ch], { pingInterval: 400, WebSocket: Counting });
  t.after(() => c.close());
  const sub = await listen(c, ch);
  await until(() => pings >= 4, 10000, "four pings");
  assert.deepEqual(c.record.states, ["connecting", "connected"], "a ping went unanswered");
  const [ev] = await publish({ channels: [ch], type: "create", data: {} });
  await until(() => sub.events.length == 1, 5000, "event");
  assert.equal(sub.events[0].ev.meta.id, ev.id);
});

test("a used token is refused: each token connects once", async (t) => {
  const ch = chan();
  const url = await hubURL();
  const tok = await token("tester", [ch]);
  const c1 = new Telegraphy({ url, token: tok });
  t.after(() => c1.close());
  await until(() => c1.state == "connected", 5000, "first connection");
  const errors = [];
  const c2 = new Telegraphy({ url, token: tok, minDelay: 5000, maxDelay: 5000 });
  c2.on("error", (e) => errors.push(e.code));
  await until(() => errors.length > 0, 5000, "refusal");
  c2.close();
  assert.equal(errors[0], "unauthorized");
});
