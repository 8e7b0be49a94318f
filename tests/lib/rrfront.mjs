// An HTTP front with no affinity at all: every request, and every
// WebSocket upgrade, goes to the next backend in turn. Stands in for a load
// balancer without sticky sessions in the polling tests.
import http from "node:http";
import net from "node:net";

/**
 * Start a round-robin front on 127.0.0.1 (a free port) before `ports`.
 * `route(n, { upgrade })` may pick the backend index for the n-th request
 * instead (n counts from 0 over requests and upgrades together).
 * Returns { port, url, counts (requests per backend), close() }.
 */
export async function startRoundRobinFront(ports, { route } = {}) {
  let next = 0;
  const counts = ports.map(() => 0);
  const pick = (upgrade = false) => {
    const n = next++;
    const i = route ? route(n, { upgrade }) : n % ports.length;
    counts[i]++;
    return ports[i];
  };
  const agent = new http.Agent({ keepAlive: false });
  const server = http.createServer((req, res) => {
    const up = http.request(
      { host: "127.0.0.1", port: pick(), method: req.method, path: req.url, headers: req.headers, agent },
      (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  server.on("upgrade", (req, sock, head) => {
    const up = net.connect(pick(true), "127.0.0.1", () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(raw + "\r\n");
      if (head?.length) up.write(head);
      up.pipe(sock);
      sock.pipe(up);
    });
    up.on("error", () => sock.destroy());
    sock.on("error", () => up.destroy());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}
