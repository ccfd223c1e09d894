// Loopback ports for the node tests (tests/browser, tests/idp), for processes that bind
// them themselves, chosen as `free_port` in tests/common/mod.rs chooses them: in turn from
// 10 000 to 19 999, below the kernel's ephemeral range, so that between the test's choosing
// one and the process's binding it no outgoing connection is given it; one in use now is
// passed over. Where the ephemeral range starts lower, ports the kernel just gave.
import net from "node:net";
import { readFileSync } from "node:fs";

const FIRST = 10_000;
const COUNT = 10_000;

function ephemeralFrom() {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0]);
  } catch {
    return 0;
  }
}

const belowEphemeral = ephemeralFrom() >= FIRST + 2 * COUNT;
// Processes that run one after another start at different places.
let next = process.pid % COUNT;

/** A server listening on `port` (0: one the kernel gives), or null if it is taken. */
function listening(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(null));
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

/** `count` distinct free ports, each held until all are found. */
export async function freePorts(count) {
  const servers = [];
  while (servers.length < count) {
    const server = await listening(belowEphemeral ? FIRST + (next++ % COUNT) : 0);
    if (server) servers.push(server);
  }
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
