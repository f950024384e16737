// fromPage() with the configuration the Go template helper renders; run by
// go test ./jsclient. The page is reduced to the one element fromPage reads.
import { test } from "node:test";
import { assert, chan, control, hubURL, listen, publish, stopHub, startHub, token, until } from "./helpers.mjs";

test("fromPage connects with the rendered config and reconnects through tokenURL", async (t) => {
  const ch = chan();
  const first = await publish({ channels: [ch], type: "create", data: {} });
  // A position from before the page's script ran: what came after arrives.
  const probe = await fetch(control + "/position?channel=" + encodeURIComponent(ch)).then((r) => r.json());
  const [ev] = await publish({ channels: [ch], type: "create", data: {} });
  const config = {
    url: await hubURL(),
    token: await token("page-user", [ch]),
    tokenURL: `${control}/token-endpoint?sub=page-user&channels=${encodeURIComponent(ch)}`,
    positions: { [ch]: probe },
  };
  globalThis.document = {
    getElementById: (id) => (id == "telegraphy-config" ? { textContent: JSON.stringify(config) } : null),
  };
  const { fromPage } = await import("../telegraphy.js");
  const c = fromPage({ minDelay: 50, maxDelay: 100 });
  t.after(() => c.close());
  assert.equal(fromPage(), c, "a second call returns the same client");
  const sub = await listen(c, ch);
  assert.equal(c.subject, "page-user");
  assert.deepEqual(sub.events.map((e) => e.ev.meta.id), [ev.id], `only the event after the rendered position (not ${first[0].id})`);

  await stopHub();
  await startHub();
  await until(() => sub.infos.length == 2, 10000, "resubscribed after a restart");
  assert.equal(c.state, "connected");
  assert.equal(c.subject, "page-user", "the new connection's token came from tokenURL");
});
