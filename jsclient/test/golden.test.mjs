// telegraphy.js against the golden wire formats in testdata/ (the ones the
// Go tests hold the hub and the plugin to): each message is fed to the
// client as the hub sends it, and what its handlers receive is checked.
// Run by go test ./jsclient.
import { test } from "node:test";
import { readFileSync, readdirSync } from "node:fs";
import { Telegraphy } from "../telegraphy.js";
import { assert, until } from "./helpers.mjs";

const testdata = new URL("../../testdata/", import.meta.url);
const read = (path) => readFileSync(new URL(path, testdata), "utf8").trimEnd();
const protocol = (name) => read(`protocol/${name}.json`);
const eventFiles = readdirSync(new URL("events/", testdata)).filter((f) => f.endsWith(".json")).sort();

// The golden events all carry the normalised meta.id; the client hands an
// id to its handlers once, so each gets its own here, in order.
const zeroID = "00000000-0000-0000-0000-000000000000";
let nextID = 0;
const uniqueIDs = (text) => text.replaceAll(zeroID, () => zeroID.slice(0, -6) + String(++nextID).padStart(6, "0"));

// A golden reply answers whichever request id the client used.
const answering = (line, id) => line.replace(/^\{"type":"(\w+)","id":\d+/, `{"type":"$1","id":${id}`);

/** A WebSocket class whose server is reply(message, send, close); its last socket is FakeSocket.last. */
function fakeHub(reply) {
  return class FakeSocket {
    constructor(url) {
      this.url = url;
      FakeSocket.last = this;
      setTimeout(() => this.onopen?.(), 0);
    }
    /** Delivers a frame from the hub. */
    push(frame) {
      this.onmessage?.({ data: frame });
    }
    send(data) {
      reply(
        JSON.parse(data),
        (frame) => setTimeout(() => this.onmessage?.({ data: frame }), 0),
        (code, reason) => setTimeout(() => this.onclose?.({ code, reason }), 0),
      );
    }
    close() {}
  };
}

function golden(reply) {
  const WebSocket = fakeHub(reply);
  const t = new Telegraphy({ url: "ws://golden/ws", token: "t", WebSocket, pingInterval: 0, minDelay: 60000 });
  t.socket = () => WebSocket.last;
  t.errors = [];
  t.on("error", (e) => t.errors.push(e));
  return t;
}

test("golden messages: welcome, subscribed, every golden event, pong, unsubscribed", async (t) => {
  const events = eventFiles.map((f) => uniqueIDs(read("events/" + f)));
  // The hub's event message around each golden event, as protocol/event.json has it.
  const wrap = (ev, offset) => `{"type":"event","channel":"shop.Kinds","offset":${offset},"event":${ev}}`;
  assert.equal(wrap(read("events/create.json"), 1), protocol("event"));
  const c = golden((m, send) => {
    if (m.type == "hello") send(protocol("welcome"));
    if (m.type == "subscribe") send(answering(protocol("subscribed"), m.id));
    if (m.type == "unsubscribe") send(answering(protocol("unsubscribed"), m.id));
  });
  t.after(() => c.close());
  const sub = c.subscribe("shop.Kinds");
  const all = [], byType = {}, infos = [];
  sub.on("subscribed", (info) => infos.push(info));
  sub.on("*", (ev, info) => all.push({ ev, info }));
  for (const ev of events) {
    const type = JSON.parse(ev).meta.event_type;
    if (!byType[type]) sub.on(type, (e) => byType[type].push(e));
    byType[type] ??= [];
  }
  await until(() => infos.length == 1, 5000, "subscribed");
  assert.equal(c.session, "SESSION");
  assert.equal(c.subject, "17");
  assert.deepEqual(infos, [{ epoch: "EPOCH", offset: 0, recovered: true }]);

  // All in one frame, a line each, as the hub batches them; a pong among them.
  const frame = [...events.map((ev, i) => wrap(ev, i + 1)), protocol("pong")].join("\n");
  c.socket().push(frame);
  await until(() => all.length == events.length, 5000, "every golden event");
  assert.deepEqual(all.map((x) => x.ev), events.map((ev) => JSON.parse(ev)), "events as the golden files hold them");
  assert.deepEqual(all.map((x) => x.info), events.map((_, i) => ({ channel: "shop.Kinds", offset: i + 1 })));
  for (const ev of events) {
    const e = JSON.parse(ev);
    assert.ok(byType[e.meta.event_type].some((x) => x.meta.id == e.meta.id), `${e.meta.event_type} handler got ${e.name}`);
  }
  assert.deepEqual(sub.position, { epoch: "EPOCH", offset: events.length });
  sub.unsubscribe();
  assert.deepEqual(c.errors, []);
});

test("golden messages: recovery with missed events", async (t) => {
  const recovered = uniqueIDs(protocol("subscribed_recovered"));
  const c = golden((m, send) => {
    if (m.type == "hello") send(protocol("welcome"));
    if (m.type == "subscribe") {
      assert.deepEqual(m.since, { epoch: "EPOCH", offset: 1 });
      send(answering(recovered, m.id));
    }
  });
  t.after(() => c.close());
  const sub = c.subscribe("shop.Kinds", { since: { epoch: "EPOCH", offset: 1 } });
  const got = [], infos = [];
  let lost = 0;
  sub.on("*", (ev, info) => got.push({ ev, info }));
  sub.on("subscribed", (info) => infos.push(info));
  sub.on("lost", () => lost++);
  await until(() => infos.length == 1, 5000, "subscribed");
  const want = JSON.parse(recovered);
  assert.deepEqual(got.map((x) => x.ev), want.missed.map((m) => m.event));
  assert.deepEqual(got.map((x) => x.info.offset), want.missed.map((m) => m.offset));
  assert.deepEqual(infos, [{ epoch: "EPOCH", offset: want.offset, recovered: true }]);
  assert.equal(lost, 0);
  assert.deepEqual(c.errors, []);
});

test("golden messages: errors", async (t) => {
  const c = golden((m, send) => {
    if (m.type == "hello") send(protocol("welcome"));
    if (m.type == "subscribe" && m.channel == "user:18") send(answering(protocol("error_forbidden"), m.id));
    if (m.type == "subscribe" && m.channel == "bad") send(answering(protocol("error_bad_request"), m.id));
  });
  t.after(() => c.close());
  const subErrors = [];
  c.subscribe("user:18").on("error", (e) => subErrors.push(e));
  c.subscribe("bad").on("error", (e) => subErrors.push(e));
  await until(() => subErrors.length == 2, 5000, "two refusals");
  const want = ["error_forbidden", "error_bad_request"].map((n) => JSON.parse(protocol(n)));
  assert.deepEqual(subErrors.map((e) => [e.code, e.message]), want.map((w) => [w.code, w.message]));

  const refused = golden((m, send, close) => {
    if (m.type != "hello") return;
    send(protocol("error_unauthorized"));
    setTimeout(() => close(4001, "malformed"), 10);
  });
  t.after(() => refused.close());
  const states = [];
  refused.on("state", (s) => states.push(s));
  await until(() => states.includes("disconnected"), 5000, "the refused connection to end");
  const w = JSON.parse(protocol("error_unauthorized"));
  assert.deepEqual(refused.errors.map((e) => [e.code, e.message]), [[w.code, w.message]], "one error, from the message, not the close");
});
