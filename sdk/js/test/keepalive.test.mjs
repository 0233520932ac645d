// The client keeps its connection to hulld between calls (hulld starts a
// thread per connection) and opens a new one once hulld closed the idle one
// (--client-timeout). Needs root and build/hulld, like e2e.test.mjs.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import * as hull from "../dist/index.js";
import { cannotRun, Hulld } from "./hulld.mjs";

const why = cannotRun();

/** The sockets the client's agent keeps idle (a private field, read here). */
function idle(c) {
  const free = c.transport.agent?.freeSockets ?? {};
  return Object.values(free).flat();
}

test("a connection is kept, then replaced after hulld closed it", { skip: why }, async () => {
  const d = new Hulld("--client-timeout", "1");
  await d.start();
  try {
    const c = new hull.Client({ socketPath: d.sock, token: d.token("user", "acme") });
    assert.equal((await c.run(["echo", "one"])).stdout, "one\n");
    const [first] = idle(c);
    assert.ok(first, "no connection kept");
    assert.equal((await c.run(["echo", "two"])).stdout, "two\n");
    assert.deepEqual(idle(c), [first]); // the same connection again
    await sleep(3000); // hulld closes a connection idle for over 1 s
    assert.equal((await c.run(["echo", "three"])).stdout, "three\n");
    assert.notEqual(idle(c)[0], first);
    c.transport.close();
    assert.deepEqual(idle(c), []);
  } finally {
    const rc = await d.stop();
    const leaks = d.leaks();
    d.cleanup();
    assert.equal(rc, 0);
    assert.deepEqual(leaks, { procs: [], entries: [], cgroups: [] });
  }
});
