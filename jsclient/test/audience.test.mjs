// Rows that move between channels: user 17's page drops the order passed
// to user 18, whose page shows it, from the leave and enter events of
// their channels.
import { test } from "node:test";
import { Telegraphy } from "../telegraphy.js";
import { assert, control, hubURL, token, until } from "./helpers.mjs";

async function call(method, path) {
  const res = await fetch(control + path, { method });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  return JSON.parse(body);
}

// page opens user's page: a collection of the user's orders on "user:<id>".
async function page(user) {
  const ch = "user:" + user;
  const t = new Telegraphy({ url: await hubURL(), token: await token(user, [ch]), getToken: () => token(user, [ch]) });
  const orders = t.collection(ch, { refetch: () => call("GET", "/orders/list?user=" + user) });
  await until(() => t.state == "connected", 10000, "connected");
  return { t, orders, items: () => orders.rows.map((o) => `${o.item}@${o.user_id}`).sort() };
}

test("an order moved from user 17 to user 18 leaves 17's page and enters 18's", async (t) => {
  const p17 = await page("17"), p18 = await page("18");
  t.after(() => [p17, p18].forEach((p) => p.t.close()));
  const book = await call("POST", "/orders/create?user=17&item=book");
  await call("POST", "/orders/create?user=17&item=pen");
  await until(() => p17.items().length == 2, 10000, "17's orders");
  assert.deepEqual(p17.items(), ["book@17", "pen@17"]);
  assert.deepEqual(p18.items(), []);

  await call("POST", `/orders/move?id=${book.id}&user=18`);
  await until(() => p18.items().length == 1 && p17.items().length == 1, 10000, "the move");
  assert.deepEqual(p17.items(), ["pen@17"]);
  assert.deepEqual(p18.items(), ["book@18"]);

  await call("POST", `/orders/move?id=${book.id}&user=17`);
  await until(() => p17.items().length == 2 && p18.items().length == 0, 10000, "the move back");
  assert.deepEqual(p17.items(), ["book@17", "pen@17"]);
});
