// Free ports on 127.0.0.1 for the node tests (tests/browser, tests/idp).
import net from "node:net";

/**
 * `count` distinct free ports: each is held until all are found, as a port let go at once
 * may be the next one the system hands out.
 */
export async function freePorts(count) {
  const servers = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise((resolve) => {
        const server = net.createServer().listen(0, "127.0.0.1", () => resolve(server));
      }),
    ),
  );
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
