// Reconnection and recovery of telegraphy.js across hub restarts; run by
// go test ./jsclient, one file at a time (these tests stop the hub).
import { test } from "node:test";
import { Telegraphy } from "../telegraphy.js";
import { assert, chan, client, hubURL, ids, listen, publish, startHub, stopHub, token, until } from "./helpers.mjs";

const timers = () => process.getActiveResourcesInfo().filter((r) => r == "Timeout").length;

test("reconnects after a hub restart and receives what was missed, once", async (t) => {
  const ch = chan("shop.Order");
  const c = await client([ch], { minDelay: 100, maxDelay: 300 });
  t.after(() => c.close());
  const sub = await listen(c, ch);
  const [e1, e2] = await publish({ channels: [ch], type: "create", data: { n: 1 } },
    { channels: [ch], type: "create", data: { n: 2 } });
  await until(() => sub.events.length == 2, 5000, "live events");

  await stopHub();
  await until(() => c.state == "disconnected", 5000, "disconnected");
  const downAt = c.record.states.length, downSince = Date.now();
  const attempts = () => c.record.states.slice(downAt).filter((s) => s == "connecting").length;
  // Committed while the client is away, including a re-publication of an
  // event it has already seen (same meta.id, new broker message).
  const away = await publish({ channels: [ch], type: "update", data: { n: 3 } },
    { channels: [ch], type: "delete", data: { n: 4 } },
    { channels: [ch], type: "create", data: { n: 2 }, id: e2.id, eventID: "again" });
  // While the hub is down the client keeps trying, but never more often
  // than every minDelay (100 ms).
  await until(() => attempts() >= 3, 10000, "three attempts");
  const elapsed = Date.now() - downSince;
  assert.ok(attempts() <= elapsed / 100 + 1, `${attempts()} attempts in ${elapsed} ms`);
  await startHub();
  await until(() => c.state == "connected", 5000, "reconnected");
  await until(() => sub.infos.length == 2, 5000, "resubscribed");
  assert.equal(sub.infos[1].recovered, true);
  assert.equal(sub.lost, 0);
  assert.deepEqual(ids(sub), [e1.id, e2.id, away[0].id, away[1].id]);
  assert.ok(c.record.tokens >= 1, "a fresh token was asked for");
  // Live delivery continues on the new connection.
  const [e5] = await publish({ channels: [ch], type: "create", data: { n: 5 } });
  await until(() => sub.events.length == 5, 5000, "live event after reconnect");
  assert.equal(sub.events[4].ev.meta.id, e5.id);
  assert.deepEqual(c.record.errors, []);
});

test("connects once the hub comes up when it is down at start", async (t) => {
  const ch = chan();
  const url = await hubURL();
  await stopHub();
  const states = [];
  const c = new Telegraphy({ url, getToken: () => token("tester", [ch]), minDelay: 100, maxDelay: 200 });
  t.after(() => c.close());
  c.on("state", (s) => states.push(s));
  const sub = c.subscribe(ch);
  const got = [];
  let subscribed = 0;
  sub.on("*", (ev) => got.push(ev.meta.id));
  sub.on("subscribed", () => subscribed++);
  await until(() => states.filter((s) => s == "connecting").length >= 2, 10000, "a retry");
  assert.notEqual(c.state, "connected");
  const [ev] = await publish({ channels: [ch], type: "create", data: {} });
  await startHub();
  await until(() => subscribed == 1, 5000, "subscribed");
  const [ev2] = await publish({ channels: [ch], type: "create", data: {} });
  await until(() => got.length == 1, 5000, "event");
  assert.deepEqual(got, [ev2.id], "subscribed from when it connected: " + ev.id + " came before");
});

test("a subscription dropped while disconnected is not renewed", async (t) => {
  const keep = chan(), drop = chan();
  const c = await client([keep, drop]);
  t.after(() => c.close());
  const sk = await listen(c, keep), sd = await listen(c, drop);
  await stopHub();
  await until(() => c.state == "disconnected", 5000, "disconnected");
  sd.unsubscribe();
  await startHub();
  await until(() => sk.infos.length == 2, 5000, "resubscribed");
  await publish({ channels: [drop], type: "create", data: {} });
  const [m] = await publish({ channels: [keep], type: "marker", data: null });
  await until(() => ids(sk).includes(m.id), 5000, "marker");
  assert.equal(sd.events.length, 0);
  assert.equal(sd.infos.length, 1);
});

test("close stops everything: no events, no reconnect, no timers", async () => {
  const before = timers();
  const ch = chan();
  const c = await client([ch], { pingInterval: 1000 });
  const sub = await listen(c, ch);
  c.close();
  c.close();
  assert.equal(c.state, "disconnected");
  assert.equal(c.closed, true);
  assert.deepEqual(c.record.states, ["connecting", "connected", "disconnected"]);
  assert.throws(() => c.subscribe(ch), { code: "closed" });
  await publish({ channels: [ch], type: "create", data: {} });
  await stopHub();
  await startHub();
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(sub.events.length, 0);
  assert.deepEqual(c.record.states, ["connecting", "connected", "disconnected"]);
  assert.equal(timers(), before, "a timer outlived close");
});

test("close while waiting to reconnect cancels the reconnection", async () => {
  const ch = chan();
  const before = timers();
  const c = await client([ch]);
  await until(() => c.state == "connected", 5000, "connected");
  await stopHub();
  await until(() => c.state == "disconnected", 5000, "disconnected");
  c.close();
  const n = c.record.states.length;
  await startHub();
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(c.record.states.length, n, "state changed after close: " + c.record.states);
  assert.equal(timers(), before, "a timer outlived close");
});
