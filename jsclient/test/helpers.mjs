// Helpers for the node tests of telegraphy.js. The Go test TestNode
// (node_test.go) starts a real hub and a control server, then runs these
// files with TELEGRAPHY_TEST_CONTROL set to the control server's URL.
import assert from "node:assert/strict";
import { Telegraphy } from "../telegraphy.js";

export const control = process.env.TELEGRAPHY_TEST_CONTROL;
if (!control) throw new Error("run through go test ./jsclient (TestNode): TELEGRAPHY_TEST_CONTROL is not set");

async function call(path, body) {
  const res = await fetch(control + path, body === undefined ? {} : { method: "POST", body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return text;
}

/** The WebSocket URL of a hub: "main", or "lossy" (its broker keeps almost nothing). */
export const hubURL = (hub = "main") => call("/hub/url?hub=" + hub);

/** A token for subject granting the channel patterns, with an info claim when given. */
export const token = (sub, channels, info) =>
  call(`/token?sub=${encodeURIComponent(sub)}&channels=${encodeURIComponent(channels.join(","))}` +
    (info ? "&info=" + encodeURIComponent(JSON.stringify(info)) : ""));

/**
 * Publishes events through the broker and returns them. Each item:
 * {channels, type, data, id?, eventID?, pk?, version?}; id is the event's
 * meta.id (fresh when omitted), eventID the broker's message id (id when
 * omitted), pk and version its meta.pk and meta.version.
 */
export async function publish(...items) {
  return JSON.parse(await call("/publish", items));
}

/**
 * The channel's position in the broker. Asking for it makes the in-process
 * broker keep the channel's history from then on, as a page rendering its
 * position does.
 */
export const position = async (ch) => JSON.parse(await call("/position?channel=" + encodeURIComponent(ch)));

/** Publishes through the broker of the named hub. */
export async function publishTo(hub, ...items) {
  return JSON.parse(await call("/publish?hub=" + hub, items));
}

/** Stops the hub: every connection is closed and new ones are refused. */
export const stopHub = () => call("/hub/stop", {});
/** Starts a new hub on the same address, over the same broker. */
export const startHub = () => call("/hub/start", {});

/** A unique channel name for one test. */
let n = 0;
export const chan = (prefix = "test") => `${prefix}.c${process.pid}x${++n}`;

/** Resolves when pred() is true, checking on every event turn; rejects after ms. */
export async function until(pred, ms = 10000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A client for the tests: it records state changes and errors, and gets
 * its tokens from the control server. The test closes it.
 */
export async function client(channels, options = {}, hub = "main") {
  const url = await hubURL(hub);
  const record = { states: [], errors: [], tokens: 0 };
  const t = new Telegraphy({
    url,
    token: await token("tester", channels),
    getToken: async () => {
      record.tokens++;
      return token("tester", channels);
    },
    minDelay: 100,
    maxDelay: 400,
    ...options,
  });
  t.on("state", (s) => record.states.push(s));
  t.on("error", (e) => record.errors.push(e));
  t.record = record;
  return t;
}

/** Subscribes and records every event handed to "*"; resolves once subscribed. */
export async function listen(t, channel, opts) {
  const sub = t.subscribe(channel, opts);
  sub.events = [];
  sub.infos = [];
  sub.lost = 0;
  sub.on("*", (ev, info) => sub.events.push({ ev, info }));
  sub.on("subscribed", (info) => sub.infos.push(info));
  sub.on("lost", () => sub.lost++);
  await until(() => sub.infos.length > 0, 10000, "subscribed on " + channel);
  return sub;
}

export const ids = (sub) => sub.events.map((e) => e.ev.meta.id);

export { assert };
