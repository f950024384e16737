// The stale-event case of the collections, run by collection.test.mjs
// (two app instances in the Go test's process) and by
// stale.processes.mjs (two app processes and Redis).
import { test } from "node:test";
import { assert, client, control, until } from "./helpers.mjs";

const watch = (coll) => {
  coll.changes = [];
  coll.errors = [];
  coll.on("change", (c) => coll.changes.push(c));
  coll.on("error", (e) => coll.errors.push(e));
  return coll;
};

// The stale-event rule, with the plugin: app A and app B (each its own
// plugin and database handle, publishing after commit, without the
// outbox) write one row to one SQLite database; A commits first, but its
// event reaches the broker after B's. The model's UpdatedAt is its
// version, so the page keeps B's row, as the database does; and a row B
// deleted is not brought back by A's late update.
export const staleCase = (title) => test(title, async (t) => {
  const ch = "stale.Card";
  const c = await client([ch]);
  t.after(() => c.close());
  const call = async (path, method = "GET") => {
    const res = await fetch(control + path, { method });
    if (!res.ok) throw new Error(path + ": " + (await res.text()));
    return res.json();
  };
  await call("/stale/create?title=first", "POST");
  await call("/stale/create?title=second", "POST");
  const page = await call("/stale/rows"); // as the page renders: position, then rows
  const [first, second] = page.rows;
  const coll = watch(c.collection(ch, {
    rows: page.rows,
    position: page.position,
    version: "updated_at",
    refetch: async () => call("/stale/rows"),
  }));
  // The writes of the races. (With Redis the creates may reach the broker
  // after the position was taken: the collection then receives them too,
  // and puts the rows it already holds.)
  const all = [];
  c.subscribe(ch).on("*", (ev) => ev.meta.event_type != "create" && all.push(ev));

  await call(`/stale/race?id=${first.id}`, "POST");
  await call(`/stale/race?id=${second.id}&delete=1`, "POST");
  await until(() => all.length == 4, 5000, "four events");
  // B's event came first, A's older one after it.
  assert.deepEqual(all.map((e) => [e.meta.event_type, e.meta.pk, e.data.title]), [
    ["update", first.id, "written by B"], ["update", first.id, "written by A"],
    ["delete", second.id, "written by A"], ["update", second.id, "written by A"],
  ]);
  assert.ok(all[1].meta.version < all[0].meta.version, "A's version is the older");
  await new Promise((r) => setTimeout(r, 50));
  const db = await call("/stale/rows");
  assert.deepEqual(db.rows.map((r) => [r.id, r.title]), [[first.id, "written by B"]]);
  assert.deepEqual(coll.rows.map((r) => [r.id, r.title]), [[first.id, "written by B"]]);
});
