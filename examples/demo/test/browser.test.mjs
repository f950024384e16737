// Browser tests of the demo in headless Chromium; run by go test
// ./examples/demo (TestBrowser), which starts the demo app and sets
// DEMO_URL, CHROMIUM and SCREENSHOT.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.DEMO_URL;
if (!base) throw new Error("run through go test ./examples/demo (TestBrowser)");

let browser;
const pageErrors = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run"],
  });
});
after(async () => {
  await browser?.close();
});

// open loads the board as user in a fresh browser context (its own
// cookies and cache) and, unless told not to, waits until it is connected.
async function open(user, { route, wait = !route } = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1180, height: 720 } });
  const page = await ctx.newPage();
  page.on("pageerror", (err) => pageErrors.push(`${user}: ${err.message}`));
  if (route) await page.route("**/telegraphy/telegraphy.js", route);
  await page.goto(`${base}/?user=${user}`, { waitUntil: route ? "commit" : "load" });
  if (wait) await connected(page);
  return page;
}

const connected = (page) => page.waitForSelector("#state.connected", { timeout: 15000 });

// rows returns the task rows as the page shows them.
const rows = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll("#tasks li")].map((li) => {
      const f = li.querySelector("form").elements;
      return { id: li.dataset.id, title: f.title.value, status: f.status.value, assignee: f.assignee.value };
    }),
  );

// waitRow waits until the page shows a row for which pred(row) holds
// (or, with absent, until no row does) and returns it.
async function waitRow(page, pred, { absent = false, timeout = 15000 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = (await rows(page)).find(pred);
    if (absent ? !found : found) return found;
    if (Date.now() > deadline) throw new Error(`row ${absent ? "still shown" : "never shown"}: ${pred}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const texts = (page, sel) => page.$$eval(sel, (els) => els.map((e) => e.textContent));

// logged returns the [channel, event id] pairs of the page's event log.
const logged = (page) =>
  page.$$eval("#log li", (els) => els.map((e) => [e.dataset.channel, e.dataset.eventId, e.textContent]));

// submit clicks a form's button and waits for the app's answer: the write
// has committed when it returns.
async function submit(page, button) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() == "POST" && !new URL(r.url()).pathname.startsWith("/token")),
    page.click(button),
  ]);
  if (!res.ok()) assert.fail(`${res.url()}: ${res.status()} ${await res.text()}`);
}

async function addTask(page, title, assignee = "") {
  await page.fill("#new input[name=title]", title);
  await page.selectOption("#new select[name=assignee]", assignee);
  await submit(page, "#new button");
}

let alice, bob;

test("a task created in one window appears in the other", async () => {
  [alice, bob] = await Promise.all([open("alice"), open("bob")]);
  await addTask(alice, "Buy milk", "bob");
  const row = await waitRow(bob, (r) => r.title == "Buy milk");
  assert.deepEqual({ ...row, id: undefined }, { id: undefined, title: "Buy milk", status: "todo", assignee: "bob" });
  await waitRow(alice, (r) => r.id == row.id);
  // Assigned to bob: his private channel says so too.
  await bob.waitForFunction(() => document.querySelector("#private").textContent.includes("New task for you: “Buy milk”"));
});

test("each page lists who is viewing the board", async () => {
  const viewers = (page, want) =>
    page.waitForFunction((w) => document.querySelector("#viewers").textContent == w, want, { timeout: 15000 });
  await Promise.all([viewers(alice, "alice, bob"), viewers(bob, "alice, bob")]);
  const carol = await open("carol");
  await Promise.all([viewers(alice, "alice, bob, carol"), viewers(carol, "alice, bob, carol")]);
  await carol.context().close();
  await Promise.all([viewers(alice, "alice, bob"), viewers(bob, "alice, bob")]);
});

test("an update in one window appears in the other", async () => {
  const { id } = await waitRow(bob, (r) => r.title == "Buy milk");
  const form = `#tasks li[data-id="${id}"] form`;
  await bob.selectOption(`${form} select[name=status]`, "done");
  await bob.fill(`${form} input[name=title]`, "Buy oat milk");
  await submit(bob, `${form} button:not(.delete)`);
  const row = await waitRow(alice, (r) => r.id == id && r.title == "Buy oat milk");
  assert.equal(row.status, "done");
  assert.equal(await alice.getAttribute(`#tasks li[data-id="${id}"]`, "class"), "done");
  // The update event names the columns that changed.
  await alice.waitForFunction((id) => [...document.querySelectorAll("#log li")]
    .some((li) => li.textContent.includes(`update #${id} (`) && li.textContent.includes("status") && li.textContent.includes("title")), id);
});

test("a delete in one window removes the row in the other", async () => {
  const { id } = await waitRow(alice, (r) => r.title == "Buy oat milk");
  await submit(alice, `#tasks li[data-id="${id}"] button.delete`);
  await waitRow(bob, (r) => r.id == id, { absent: true });
  await waitRow(alice, (r) => r.id == id, { absent: true });
});

// boardLog returns the board channel's events in the page's log, as
// "create #12" (oldest first).
const boardLog = async (page) =>
  (await logged(page)).filter(([ch]) => ch == "demo.Task").map(([, , text]) => text.split(" ").slice(2, 4).join(" ")).reverse();

test("the window that makes a change shows it at once and gets no echo; the user's other window does", async () => {
  const alice2 = await open("alice");
  // SQLite may reuse the id of a task deleted earlier: only the log
  // entries from here on count.
  const seen = (await boardLog(alice)).length;
  await addTask(alice, "Echo check", "bob");
  // Applied from the app's answer.
  const { id } = await waitRow(alice, (r) => r.title == "Echo check");
  await waitRow(alice2, (r) => r.id == id);
  await waitRow(bob, (r) => r.id == id);
  await editTask(alice, id, { title: "Echo check, renamed" });
  await waitRow(alice, (r) => r.id == id && r.title == "Echo check, renamed");
  await waitRow(alice2, (r) => r.id == id && r.title == "Echo check, renamed");
  // A page sending alice's session id as bob hides nothing from alice:
  // the hub checks the user too.
  const session = await alice.evaluate(async () => (await import("/telegraphy/telegraphy.js")).fromPage().session);
  const res = await fetch(`${base}/tasks/${id}?user=bob`, {
    method: "POST",
    headers: { "X-Telegraphy-Session": session },
    body: new URLSearchParams({ title: "Echo check, by bob", status: "todo", assignee: "bob" }),
  });
  assert.ok(res.ok, await res.text());
  // The board channel's events arrive in order: once alice's window has
  // bob's update, it would have had its own two before it.
  await waitRow(alice, (r) => r.id == id && r.title == "Echo check, by bob");
  await waitRow(alice2, (r) => r.id == id && r.title == "Echo check, by bob");
  const mine = (await boardLog(alice)).slice(seen).filter((e) => e.endsWith(`#${id}`));
  assert.deepEqual(mine, [`update #${id}`], "alice's window got its own events back");
  const other = (await boardLog(alice2)).filter((e) => e.endsWith(`#${id}`));
  assert.deepEqual(other, [`create #${id}`, `update #${id}`, `update #${id}`]);
  await alice2.context().close();
});

test("a private channel reaches only its user", async () => {
  const carol = await open("carol");
  // Carol's page tries to listen to bob's private channel: the hub refuses.
  await carol.evaluate(async () => {
    const { fromPage } = await import("/telegraphy/telegraphy.js");
    const snoop = fromPage().subscribe("user:bob");
    window.snooped = [];
    window.snoopErrors = [];
    snoop.on("*", (ev) => window.snooped.push(ev));
    snoop.on("error", (err) => window.snoopErrors.push(err.code));
  });
  await carol.waitForFunction(() => window.snoopErrors.length > 0);
  assert.deepEqual(await carol.evaluate(() => window.snoopErrors), ["forbidden"]);

  await alice.selectOption("#note select[name=to]", "bob");
  await alice.fill("#note input[name=text]", "Lunch at noon?");
  await submit(alice, "#note button");
  await bob.waitForFunction(() => document.querySelector("#private").textContent.includes("Note from alice: Lunch at noon?"));
  // A task for carol, sent after the note, reaches her private channel:
  // once it is there, the note would have been too.
  await addTask(alice, "Water the plants", "carol");
  await carol.waitForFunction(() => document.querySelector("#private").textContent.includes("Water the plants"));
  for (const [who, page] of [["alice", alice], ["carol", carol]]) {
    const priv = (await texts(page, "#private li")).join("\n");
    assert.ok(!priv.includes("Lunch"), `${who} saw bob's note: ${priv}`);
    const chans = (await logged(page)).map(([ch]) => ch);
    assert.ok(!chans.includes("user:bob"), `${who} logged an event of user:bob`);
  }
  assert.deepEqual(await carol.evaluate(() => window.snooped), []);
  await carol.context().close();
});

test("pages reconnect after a hub restart and get what they missed, once", async () => {
  const before = await rows(alice);
  await submit(alice, "#stop-hub");
  await Promise.all([alice, bob].map((p) => p.waitForSelector("#state.disconnected", { timeout: 10000 })));
  // The app still takes writes while the hub is down.
  await addTask(bob, "Written while the hub was down", "alice");
  const changed = before.find((r) => r.title.startsWith("Edit a task"));
  await bob.selectOption(`#tasks li[data-id="${changed.id}"] select[name=status]`, "done");
  await submit(bob, `#tasks li[data-id="${changed.id}"] button:not(.delete)`);
  await new Promise((r) => setTimeout(r, 500));
  assert.notEqual(await alice.textContent("#state"), "connected"); // it retries: "connecting" at times
  assert.ok(!(await rows(alice)).some((r) => r.title == "Written while the hub was down"), "alice saw a change while the hub was down");

  await submit(alice, "#start-hub");
  await Promise.all([connected(alice), connected(bob)]);
  const row = await waitRow(alice, (r) => r.title == "Written while the hub was down");
  await waitRow(alice, (r) => r.id == changed.id && r.status == "done");
  await waitRow(bob, (r) => r.id == row.id);
  // Each event is handed to the page once: the log has no (channel, id)
  // twice, and exactly one create of the new task on the board channel.
  for (const page of [alice, bob]) {
    const log = await logged(page);
    const keys = log.map(([ch, id]) => ch + " " + id);
    assert.equal(new Set(keys).size, keys.length, "an event was delivered twice:\n" + keys.join("\n"));
    const creates = log.filter(([ch, , text]) => ch == "demo.Task" && text.includes(`create #${row.id}`));
    assert.equal(creates.length, 1);
  }
  await alice.waitForFunction(() => document.querySelector("#private").textContent.includes("New task for you: “Written while the hub was down”"));
});

// The tasks in the database, as the app's /tasks answers them, in the
// form rows() gives.
async function dbRows() {
  const res = await fetch(`${base}/tasks?user=alice`);
  assert.equal(res.status, 200);
  const { rows } = await res.json();
  return rows.map((r) => ({ id: String(r.id), title: r.title, status: r.status, assignee: r.assignee }));
}

const byID = (rs) => [...rs].sort((a, b) => a.id - b.id);

// sameAsDB waits until every page's list shows what the database holds.
async function sameAsDB(pages, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const want = byID(await dbRows());
    const got = await Promise.all(pages.map(async (p) => byID(await rows(p))));
    if (got.every((g) => JSON.stringify(g) == JSON.stringify(want))) return want;
    if (Date.now() > deadline) assert.deepEqual(got, pages.map(() => want), "a page's list differs from the database");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function editTask(page, id, { title, status, assignee }) {
  const form = `#tasks li[data-id="${id}"] form`;
  if (title !== undefined) await page.fill(`${form} input[name=title]`, title);
  if (status !== undefined) await page.selectOption(`${form} select[name=status]`, status);
  if (assignee !== undefined) await page.selectOption(`${form} select[name=assignee]`, assignee);
  await submit(page, `${form} button:not(.delete)`);
}

const deleteTask = (page, id) => submit(page, `#tasks li[data-id="${id}"] button.delete`);

test("two users edit the board at once; both lists match the database, across a hub restart", async () => {
  const titled = async (page, title) => (await waitRow(page, (r) => r.title == title)).id;
  // Both add tasks at the same time.
  await Promise.all([
    (async () => { for (const n of [1, 2, 3]) await addTask(alice, `alice's ${n}`, "bob"); })(),
    (async () => { for (const n of [1, 2, 3]) await addTask(bob, `bob's ${n}`); })(),
  ]);
  const a = await Promise.all([1, 2, 3].map((n) => titled(bob, `alice's ${n}`)));
  const b = await Promise.all([1, 2, 3].map((n) => titled(alice, `bob's ${n}`)));
  // Each edits the other's tasks, and both edit one task.
  await Promise.all([
    (async () => {
      await editTask(alice, b[0], { status: "doing" });
      await editTask(alice, a[2], { title: "edited by both (alice)" });
      await deleteTask(alice, b[1]);
    })(),
    (async () => {
      await editTask(bob, a[0], { title: "alice's 1, renamed by bob", status: "done" });
      await editTask(bob, a[2], { status: "doing" });
      await deleteTask(bob, a[1]);
    })(),
  ]);
  await sameAsDB([alice, bob]);

  // The hub goes down; both keep editing; it comes back.
  await submit(alice, "#stop-hub");
  await Promise.all([alice, bob].map((p) => p.waitForSelector("#state.disconnected", { timeout: 10000 })));
  await Promise.all([
    (async () => {
      await addTask(alice, "alice's, while the hub was down");
      await editTask(alice, a[0], { assignee: "carol" });
      await deleteTask(alice, b[2]);
    })(),
    (async () => {
      await addTask(bob, "bob's, while the hub was down", "alice");
      await editTask(bob, b[0], { title: "bob's 1, while the hub was down", status: "done" });
      await editTask(bob, a[2], { title: "edited by both (bob)" });
    })(),
  ]);
  await submit(bob, "#start-hub");
  await Promise.all([connected(alice), connected(bob)]);
  const final = await sameAsDB([alice, bob]);
  assert.ok(final.some((r) => r.title == "alice's, while the hub was down"));
  assert.ok(final.some((r) => r.id == b[0] && r.title == "bob's 1, while the hub was down" && r.status == "done"));
  assert.ok(!final.some((r) => [a[1], b[1], b[2]].includes(r.id)), "a deleted task is listed");
  // Live again: one more edit reaches both.
  await editTask(alice, a[0], { status: "todo" });
  await sameAsDB([alice, bob]);
});

test("more writes than the history holds while the hub is down: both pages refetch and match the database", async () => {
  const refetches = new Map([[alice, 0], [bob, 0]]);
  const count = (page) => (req) => {
    if (req.method() == "GET" && new URL(req.url()).pathname == "/tasks") refetches.set(page, refetches.get(page) + 1);
  };
  for (const page of [alice, bob]) page.on("request", count(page));
  await submit(alice, "#stop-hub");
  await Promise.all([alice, bob].map((p) => p.waitForSelector("#state.disconnected", { timeout: 10000 })));
  // The broker keeps the last 1,000 events of a channel: 1,001 updates of
  // the board push out the pages' positions.
  const tasks = await dbRows();
  const write = async (path, form) => {
    const res = await fetch(`${base}${path}?user=alice`, { method: "POST", body: new URLSearchParams(form) });
    assert.ok(res.ok, `${path}: ${res.status} ${await res.text()}`);
  };
  for (let i = 0; i < 1001; i++) {
    const task = tasks[i % tasks.length];
    await write(`/tasks/${task.id}`, { title: `burst ${i}`, status: task.status, assignee: task.assignee });
  }
  await write(`/tasks/${tasks[0].id}/delete`, {});
  await write("/tasks", { title: "after the burst", assignee: "bob" });
  await submit(bob, "#start-hub");
  await Promise.all([connected(alice), connected(bob)]);
  const final = await sameAsDB([alice, bob]);
  assert.ok(final.some((r) => r.title == "after the burst"));
  assert.ok(!final.some((r) => r.id == tasks[0].id));
  assert.ok(refetches.get(alice) >= 1 && refetches.get(bob) >= 1, `refetches: ${[...refetches.values()]}`);
  // Live again after the refetch; the tasks get their titles back.
  for (const task of tasks.slice(1)) await write(`/tasks/${task.id}`, { title: task.title, status: task.status, assignee: task.assignee });
  await sameAsDB([alice, bob]);
  assert.ok((await rows(bob)).some((r) => r.title == tasks[1].title));
});

test("an event committed between page render and subscribe arrives", async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const page = await open("bob", { route: async (route) => { await gate; await route.continue(); } });
  // The page is rendered (its positions taken) but its script is held back.
  await page.waitForSelector("#initial-tasks", { state: "attached" });
  await addTask(alice, "Committed before subscribing");
  await waitRow(alice, (r) => r.title == "Committed before subscribing");
  assert.ok(!(await page.textContent("#initial-tasks")).includes("Committed before subscribing"));
  release();
  await connected(page);
  await waitRow(page, (r) => r.title == "Committed before subscribing");
  await page.context().close();
});

test("a page opened while the hub is down connects when it comes up", async () => {
  await submit(alice, "#stop-hub");
  await alice.waitForSelector("#state.disconnected", { timeout: 10000 });
  const page = await open("carol", { wait: false });
  await page.waitForSelector("#state.connecting, #state.disconnected", { timeout: 10000 });
  await new Promise((r) => setTimeout(r, 1000));
  assert.notEqual(await page.textContent("#state"), "connected");
  await submit(alice, "#start-hub");
  await connected(page);
  await addTask(alice, "After the hub came back", "carol");
  await waitRow(page, (r) => r.title == "After the hub came back");
  await page.waitForFunction(() => document.querySelector("#private").textContent.includes("After the hub came back"));
  await page.context().close();
});

// mine returns the titles in the page's "my tasks".
const mine = (page) => page.$$eval("#mine li", (els) => els.map((e) => e.textContent));

// waitMine waits until the page's "my tasks" shows (or, with absent, no
// longer shows) a task with this title.
const waitMine = (page, title, absent = false) =>
  page.waitForFunction(([t, absent]) => [...document.querySelectorAll("#mine li")]
    .some((li) => li.textContent.startsWith(t + " (")) != absent, [title, absent], { timeout: 15000 });

test("reassigning a task moves it live between the users' \"my tasks\"", async () => {
  const carol = await open("carol");
  await addTask(carol, "Renew the domain", "alice");
  await waitMine(alice, "Renew the domain");
  const { id } = await waitRow(carol, (r) => r.title == "Renew the domain");
  const form = `#tasks li[data-id="${id}"] form`;

  // Carol passes it to bob: it leaves alice's list and enters bob's.
  await carol.selectOption(`${form} select[name=assignee]`, "bob");
  await submit(carol, `${form} button:not(.delete)`);
  await waitMine(bob, "Renew the domain");
  await waitMine(alice, "Renew the domain", true);
  await alice.waitForFunction((id) => document.querySelector("#private").textContent.includes(`Task #${id} is no longer yours`), id);
  await bob.waitForFunction(() => document.querySelector("#private").textContent.includes("Task “Renew the domain” is now yours"));

  // Bob gives it back from his own page: his list drops it at once (the
  // app's answer; no echo comes back) and alice's shows it again.
  await bob.selectOption(`${form} select[name=assignee]`, "alice");
  await submit(bob, `${form} button:not(.delete)`);
  await waitMine(bob, "Renew the domain", true);
  await waitMine(alice, "Renew the domain");
  assert.ok(!(await mine(carol)).some((t) => t.startsWith("Renew the domain")));
  // Its status changes: alice's list shows the new status, an update in place.
  await carol.selectOption(`${form} select[name=status]`, "doing");
  await submit(carol, `${form} button:not(.delete)`);
  await alice.waitForFunction(() => [...document.querySelectorAll("#mine li")].some((li) => li.textContent == "Renew the domain (doing)"));
  assert.equal((await mine(alice)).filter((t) => t.startsWith("Renew the domain")).length, 1);
  await carol.context().close();
});

test("screenshot", async () => {
  await alice.fill("#new input[name=title]", "Ship the release notes");
  await bob.selectOption("#note select[name=to]", "alice");
  await bob.fill("#note input[name=text]", "Reviewed your draft, looks good");
  await submit(bob, "#note button");
  await alice.waitForFunction(() => document.querySelector("#private").textContent.includes("Reviewed your draft"));
  if (process.env.SCREENSHOT) await alice.screenshot({ path: process.env.SCREENSHOT });
  assert.deepEqual(pageErrors, []);
});
