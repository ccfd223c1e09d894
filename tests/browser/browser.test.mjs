// A page on one origin calls autoshares-bff on another, in Debian's Chromium driven by
// Playwright: `autoshares-bff dev` with cors.allowed_origins set to the page's origin.
// The page's client is typed from the running service's /openapi.json (openapi-typescript,
// checked by tsc, bundled by esbuild). Run by tests/browser/run.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { freePorts } from "../common/free-ports.mjs";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.BFF_BIN;
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const bins = join(here, "node_modules", ".bin");

/** Serves the page and its bundle on 127.0.0.1:port. */
function servePage(port) {
  const files = {
    "/": ["text/html", readFileSync(join(here, "page", "index.html"))],
    "/app.js": ["text/javascript", readFileSync(join(here, "generated", "app.js"))],
  };
  const server = createServer((request, response) => {
    const [type, body] = files[new URL(request.url, "http://x").pathname] ?? [];
    if (!body) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "Content-Type": type }).end(body);
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

let dev, browser, token, api, sandbox, pages = [], workdir, allowedPort, strangerPort;

before(async () => {
  assert.ok(bin, "BFF_BIN names the autoshares-bff binary");
  const ports = await freePorts(5);
  const [publicPort, adminPort, sandboxPort] = ports;
  [allowedPort, strangerPort] = ports.slice(3);
  api = `http://127.0.0.1:${publicPort}`;
  sandbox = `http://127.0.0.1:${sandboxPort}`;
  workdir = mkdtempSync(join(tmpdir(), "bff-browser-"));
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("BFF__") || key === "RUST_LOG") delete env[key];
  Object.assign(env, {
    BFF__SERVER__LISTEN: `127.0.0.1:${publicPort}`,
    BFF__SERVER__ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
    BFF__SANDBOX__LISTEN: `127.0.0.1:${sandboxPort}`,
    BFF__CORS__ALLOWED_ORIGINS: `http://127.0.0.1:${allowedPort}`,
    BFF__LOG__LEVEL: "warn",
  });
  dev = spawn(bin, ["dev"], { cwd: workdir, env, stdio: ["ignore", "pipe", "inherit"] });
  token = await new Promise((resolve, reject) => {
    let out = "";
    dev.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/^export TOKEN=(\S+)$/m);
      if (match) resolve(match[1]);
    });
    dev.on("exit", (code) => reject(new Error(`dev exited with ${code}: ${out}`)));
  });

  // The client: types from the document the running service serves, checked, bundled.
  const generated = join(here, "generated");
  mkdirSync(generated, { recursive: true });
  const document = await (await fetch(`${api}/openapi.json`)).text();
  writeFileSync(join(generated, "openapi.json"), document);
  execFileSync(join(bins, "openapi-typescript"), [join(generated, "openapi.json"), "-o", join(generated, "api.d.ts")], { stdio: "inherit" });
  execFileSync(join(bins, "tsc"), ["-p", join(here, "tsconfig.json")], { stdio: "inherit" });
  execFileSync(join(bins, "esbuild"), [join(here, "page", "app.ts"), "--bundle", "--format=iife", `--outfile=${join(generated, "app.js")}`], { stdio: "inherit" });
  pages = [await servePage(allowedPort), await servePage(strangerPort)];

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  for (const page of pages) page.close();
  dev?.kill("SIGINT");
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

async function open(port) {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/?api=${encodeURIComponent(api)}&token=${token}`);
  return page;
}

/** Clicks `button` and waits until `answer` shows something new. */
async function press(page, button, answer) {
  await page.locator(`#${answer}`).evaluate((element) => { element.textContent = ""; });
  await page.click(`#${button}`);
  await page.waitForFunction((id) => document.getElementById(id).textContent !== "", answer);
  return page.locator(`#${answer}`).textContent();
}

test("a page on a listed origin binds, verifies, reads and unbinds", async () => {
  const page = await open(allowedPort);
  const bound = await press(page, "bind", "bind-answer");
  assert.match(bound, /^200 /);
  assert.match(bound, /"state":"NotVerified"/);
  assert.match(bound, /ratelimit="bind_per_user";r=4;t=0/, "the exposed RateLimit field is readable");

  const sms = await (await fetch(`${sandbox}/sandbox/sms?phoneNumber=%2B13108904569`)).json();
  await page.fill("#code", sms.code);
  const verified = await press(page, "verify", "verify-answer");
  assert.match(verified, /^200 .*"state":"Active"/);
  assert.match(await press(page, "read", "read-answer"), /^200 .*"phoneNumber":"\+13108904569"/);
  assert.match(await press(page, "unbind", "unbind-answer"), /^204 /);
  assert.match(await press(page, "read", "read-answer"), /^404 .*"code":"no_phone_number"/);
});

test("a page on an origin not listed cannot read an answer", async () => {
  const page = await open(strangerPort);
  assert.match(await press(page, "read", "read-answer"), /^blocked: TypeError/);
  assert.match(await press(page, "bind", "bind-answer"), /^blocked: TypeError/);
});
