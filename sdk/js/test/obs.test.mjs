// Streamed runs and per-sandbox metrics through the SDK against a real
// hulld started by this file (sampling every 200 ms): client.run with
// onStdout gets the output while the run runs and the same Result as a
// plain run; sb.metrics() shows a process's 64 MiB and a loop's CPU time.
// hulld is stopped by its pid and the host checked afterwards. Needs root
// and build/hulld ($HULL names build/hull; hulld beside it).
import assert from "node:assert/strict";
import { after, test } from "node:test";
import * as hull from "../dist/index.js";
import { cannotRun, Hulld, waitUntil } from "./hulld.mjs";

const MiB = 1 << 20;
const why = cannotRun();
const d = why ? undefined : new Hulld("--metrics-interval", "200");
let client;

after(async () => {
  if (d?.proc) await d.stop("SIGKILL"); // only when the last test did not get to it
  d?.cleanup();
});

if (d) {
  await d.start();
  client = new hull.Client({ socketPath: d.sock, token: d.token("user", "acme") });
}
const base = { skip: why ?? false };

test("a streamed run: output while it runs, then its result", base, async () => {
  const got = [];
  const ids = [];
  const states = [];
  const res = await client.run(["sh", "-c", "echo first; sleep 1; echo second; echo e >&2"], {
    onStart: (id) => ids.push(id),
    onStdout: async (text) => {
      got.push(text);
      if (text === "first\n") states.push((await client.get(ids[0])).state);
    },
    onStderr: (text) => got.push(text),
  });
  assert.match(ids[0], /^r-/);
  assert.equal(got.join(""), "first\nsecond\ne\n");
  assert.deepEqual(states, ["running"]);
  assert.equal(res.verdict, "ok");
  assert.equal(res.stdout, "first\nsecond\n");
  assert.equal(res.stderr, "e\n");
  await assert.rejects(client.run(["true"], { onStdout: () => {}, queue: true }), TypeError);
});

test("sandbox metrics: 64 MiB held, CPU time rising", base, async () => {
  const sb = await client.sandbox({ limits: { memory: "512M" } });
  try {
    const p = await sb.start(["python3", "-c", "import time\nb = b'x' * (64 << 20)\ntime.sleep(300)"]);
    assert.ok(await waitUntil(async () => (await sb.metrics()).some((s) => (s.memoryBytes ?? 0) >= 64 * MiB), 60));
    await p.kill();
    const first = (await sb.metrics()).at(-1);
    await sb.start(["sh", "-c", "while :; do :; done"]);
    assert.ok(await waitUntil(async () => ((await sb.metrics()).at(-1).cpuSeconds ?? 0) >= first.cpuSeconds + 0.5, 120));
    const later = await sb.metrics({ since: first.time });
    assert.ok(later.length > 0 && later.every((s) => s.time > first.time));
    assert.ok((await sb.metrics({ since: new Date(Date.UTC(2000, 0, 1)) })).length > 0);
  } finally {
    await sb.delete();
  }
});

test("hulld stops cleanly and leaves nothing behind", base, async () => {
  assert.equal(await d.stop(), 0);
  assert.deepEqual(d.leaks(), { procs: [], entries: [], cgroups: [] });
});
