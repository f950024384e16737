// The sender's own echo: a page that sends t.headers() with its request
// gets no event of the write it made; its user's other tabs do.
import { test } from "node:test";
import { Telegraphy } from "../telegraphy.js";
import { assert, control, hubURL, listen, token, until } from "./helpers.mjs";

const ch = "echo.Note";

async function tab(user) {
  const t = new Telegraphy({ url: await hubURL(), token: await token(user, [ch]), getToken: () => token(user, [ch]) });
  assert.deepEqual(t.headers(), {}, "no session before the welcome");
  return t;
}

// write creates a note as user (the app's login) with the given headers
// and returns the row the app answers.
async function write(title, user, headers) {
  const res = await fetch(control + "/app/notes?title=" + encodeURIComponent(title), {
    method: "POST",
    headers: { "X-User": user, ...headers },
  });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  return JSON.parse(body);
}

const titles = (sub) => sub.events.map((e) => e.ev.meta.event_type + ":" + e.ev.data.title);

test("the tab that makes a change gets no echo; the same user's other tab does; a forged session id hides nothing", async (t) => {
  const a = await tab("17"), b = await tab("17"), c = await tab("18");
  t.after(() => [a, b, c].forEach((x) => x.close()));
  const [sa, sb, sc] = await Promise.all([listen(a, ch), listen(b, ch), listen(c, ch)]);
  assert.equal(typeof a.session, "string");
  assert.notEqual(a.session, b.session);
  assert.deepEqual(a.headers(), { "X-Telegraphy-Session": a.session });

  const own = await write("own", "17", a.headers());
  assert.equal(own.title, "own"); // the page applies its change from the answer
  await write("forged", "18", a.headers()); // user 18 sends a's session id
  await write("forged-c", "17", c.headers()); // user 17 sends user 18's
  await write("plain", "17", {});
  await until(() => sb.events.length == 4 && sc.events.length == 4, 10000, "events in b and c");
  // Events arrive in order: once a has "plain", it would have had "own".
  await until(() => sa.events.some((e) => e.ev.data.title == "plain"), 10000, "plain in a");
  assert.deepEqual(titles(sa), ["create:forged", "create:forged-c", "create:plain"]);
  assert.deepEqual(titles(sb), ["create:own", "create:forged", "create:forged-c", "create:plain"]);
  assert.deepEqual(titles(sc), ["create:own", "create:forged", "create:forged-c", "create:plain"]);

  a.close();
  assert.deepEqual(a.headers(), {}, "no session once closed");
});

test("Collection.put and remove apply the page's own change at once, and once", async (t) => {
  const a = await tab("17"), b = await tab("17");
  t.after(() => [a, b].forEach((x) => x.close()));
  const ca = a.collection(ch, { refetch: async () => [] });
  const cb = b.collection(ch, { refetch: async () => [] });
  const changes = [];
  ca.on("change", (c) => changes.push(c));
  await Promise.all([a, b].map((x) => until(() => x.state == "connected", 10000, "connected")));
  await until(() => a._ch.get(ch)?.state == 2 && b._ch.get(ch)?.state == 2, 10000, "subscribed");

  const row = await write("put", "17", a.headers());
  ca.put(row);
  await until(() => changes.length == 1, 10000, "change");
  assert.deepEqual(changes[0], { added: [row], updated: [], removed: [] });
  assert.deepEqual(ca.get(row.id), row);
  await until(() => cb.get(row.id), 10000, "the row in the other tab");
  assert.deepEqual(cb.get(row.id), row);

  ca.remove(row.id);
  await until(() => changes.length == 2, 10000, "change");
  assert.deepEqual(changes[1], { added: [], updated: [], removed: [row] });
  assert.equal(ca.rows.length, 0);
});
