// Presence through telegraphy.js: sub.presence() and "join"/"leave".
import { test } from "node:test";
import { Telegraphy, TelegraphyError } from "../telegraphy.js";
import { assert, chan, hubURL, token, until } from "./helpers.mjs";

// A client for subject with info, granted every test channel.
async function user(subject, info) {
  const tok = () => token(subject, ["presence.*", "test.*"], info);
  const t = new Telegraphy({ url: await hubURL(), token: await tok(), getToken: tok, minDelay: 100, maxDelay: 400 });
  await until(() => t.state == "connected", 10000, subject + " connected");
  return t;
}

const subscribed = (sub) => new Promise((ok) => sub.on("subscribed", ok));

test("presence lists the members; join and leave reach subscriptions that asked", async (t) => {
  const ch = chan("presence");
  const ada = await user("ada", { name: "Ada" });
  t.after(() => ada.close());
  const sub = ada.subscribe(ch, { presence: true });
  const notices = [];
  sub.on("join", (m, info) => notices.push(["join", m.subject, m.info, info.presence]));
  sub.on("leave", (m) => notices.push(["leave", m.subject]));
  await subscribed(sub);
  await until(() => notices.length == 1, 5000, "ada's own join");
  assert.deepEqual(notices[0], ["join", "ada", { name: "Ada" }, true]);
  assert.deepEqual(await sub.presence(), [{ subject: "ada", info: { name: "Ada" } }]);

  // A subscription that did not ask hears no notices.
  const quiet = ada.subscribe(ch);
  const heard = [];
  quiet.on("join", (m) => heard.push(m));

  // bob with two tabs is one member; he leaves with his last tab.
  const bob1 = await user("bob"), bob2 = await user("bob");
  t.after(() => (bob1.close(), bob2.close()));
  const b1 = bob1.subscribe(ch), b2 = bob2.subscribe(ch);
  await Promise.all([subscribed(b1), subscribed(b2)]);
  await until(() => notices.length == 2, 5000, "bob's join");
  assert.deepEqual(notices[1], ["join", "bob", undefined, true]);
  assert.deepEqual((await b1.presence()).map((m) => m.subject), ["ada", "bob"]);
  // (That closing one tab is no leave is checked by the hub's Go tests.)
  bob1.close();
  bob2.close();
  await until(() => notices.length == 3, 5000, "bob's leave");
  assert.deepEqual(notices, [["join", "ada", { name: "Ada" }, true], ["join", "bob", undefined, true], ["leave", "bob"]]);
  assert.deepEqual(heard, []);
});

test("presence of a channel without presence is refused, as when not subscribed", async (t) => {
  const ada = await user("ada");
  t.after(() => ada.close());
  const sub = ada.subscribe(chan("test"), { presence: true });
  await subscribed(sub);
  await assert.rejects(sub.presence(), (err) => err instanceof TelegraphyError && err.code == "not_found");
  const gone = ada.subscribe(chan("presence"));
  gone.unsubscribe();
  await assert.rejects(gone.presence(), (err) => err instanceof TelegraphyError && err.code == "not_subscribed");
});

test("a subscription asking for presence on a channel already subscribed gets notices", async (t) => {
  const ch = chan("presence");
  const ada = await user("ada");
  t.after(() => ada.close());
  const plain = ada.subscribe(ch);
  await subscribed(plain);
  const watching = ada.subscribe(ch, { presence: true });
  const joins = [];
  watching.on("join", (m) => joins.push(m.subject));
  await subscribed(watching);
  const bob = await user("bob");
  t.after(() => bob.close());
  await subscribed(bob.subscribe(ch));
  await until(() => joins.includes("bob"), 5000, "bob's join");
  assert.deepEqual(await watching.presence().then((ms) => ms.map((m) => m.subject)), ["ada", "bob"]);
});
