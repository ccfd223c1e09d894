// The service against a real OpenID provider (oidc-provider, pinned in package-lock.json):
// the provider issues RFC 9068 access tokens (`typ: at+jwt`) by client_credentials, signed
// with each algorithm the service accepts, and serves its JWKS over HTTPS from a CA this
// test makes. Drives `autoshares-bff serve` (and `sandbox` as AutoShares) from outside.
// Run by tests/idp/run.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:https";
import { request as httpsRequest } from "node:https";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "../common/free-ports.mjs";
import Provider from "oidc-provider";
import { SignJWT, importJWK, decodeProtectedHeader, decodeJwt } from "jose";

const bin = process.env.BFF_BIN;
const AUDIENCE = "autoshares-bff";
// A user the sandbox (AutoShares' stand-in) knows.
const USER = 1001;
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A private key of the type `alg` needs, as a JWK named `kid` that says its `alg`. */
function signingKey(alg, kid) {
  const [type, options] = alg.startsWith("ES")
    ? ["ec", { namedCurve: alg === "ES256" ? "P-256" : "P-384" }]
    : alg === "EdDSA"
      ? ["ed25519", {}]
      : ["rsa", { modulusLength: 2048 }];
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: "jwk" }), kid, alg, use: "sig" };
}

/** A CA, and a certificate it signs for localhost, made with openssl in `dir`. */
function certificates(dir) {
  const run = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=idp test CA", "-days", "1");
  run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "idp.key", "-out", "idp.csr", "-subj", "/CN=localhost");
  writeFileSync(join(dir, "san.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  run("x509", "-req", "-in", "idp.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "idp.pem", "-days", "1", "-extfile", "san.cnf");
  return { ca: join(dir, "ca.pem"), key: join(dir, "idp.key"), cert: join(dir, "idp.pem") };
}

let workdir, tls, issuer, server, keys, provider, jwksFetches = 0, sandbox, services = [];

/** A provider for `keys` (rotation builds a new one; the server then serves it). */
function makeProvider(keys) {
  const instance = new Provider(issuer, {
    clients: [{
      client_id: "app", client_secret: "app-secret-of-the-test-0123456789",
      grant_types: ["client_credentials"], redirect_uris: [], response_types: [],
    }, {
      // A client whose id is the service's audience: its ID tokens carry that `aud`.
      client_id: AUDIENCE, client_secret: "web-secret-of-the-test-0123456789",
      grant_types: ["authorization_code"], response_types: ["code"],
      redirect_uris: ["https://app.example/callback"],
    }],
    jwks: { keys },
    features: {
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => `https://bff.example/${ALGORITHMS[0]}`,
        useGrantedResource: () => true,
        // The resource names the signing algorithm, so that one client gets each.
        getResourceServerInfo: (ctx, resource) => ({
          scope: "phone",
          audience: AUDIENCE,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: resource.split("/").pop() } },
        }),
      },
    },
    extraTokenClaims: () => ({ autoshares_user_id: USER }),
  });
  instance.proxy = false;
  return instance;
}

/** One HTTPS request to the provider: its status, headers and body. */
function providerCall(method, path, { headers = {}, body } = {}) {
  const url = new URL(path, issuer);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, ca: readFileSync(tls.ca), headers }, (res) => {
      let text = "";
      res.on("data", (chunk) => { text += chunk; });
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** An ID token of the provider for the client `AUDIENCE`, through the authorization code
 * flow with the provider's development login and consent pages, as a browser would. */
async function idToken() {
  const cookies = new Map();
  const keep = (response) => {
    for (const line of response.headers["set-cookie"] ?? []) {
      const [pair] = line.split(";");
      const [name, value] = pair.split("=");
      cookies.set(name, value);
    }
  };
  const cookie = () => [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  const form = "application/x-www-form-urlencoded";
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const redirect = "https://app.example/callback";
  let location = `/auth?${new URLSearchParams({
    client_id: AUDIENCE, response_type: "code", scope: "openid", redirect_uri: redirect,
    code_challenge: challenge, code_challenge_method: "S256", state: "state-1", nonce: "nonce-1",
  })}`;
  for (let step = 0; step < 10 && !location.startsWith(redirect); step++) {
    let response = await providerCall("GET", location, { headers: { cookie: cookie() } });
    keep(response);
    const next = response.headers.location;
    if (next?.includes("/interaction/")) {
      // The login page, then the consent page: submit each as its form would.
      const page = await providerCall("GET", next, { headers: { cookie: cookie() } });
      keep(page);
      const prompt = /name="prompt" value="(\w+)"/.exec(page.text)?.[1] ?? "login";
      response = await providerCall("POST", next, {
        headers: { cookie: cookie(), "content-type": form },
        body: new URLSearchParams({ prompt, login: "user-1", password: "any" }).toString(),
      });
      keep(response);
    }
    location = response.headers.location;
    assert.ok(location, `the flow stopped at step ${step}: ${response.status} ${response.text}`);
  }
  const code = new URL(location).searchParams.get("code");
  const answer = await providerCall("POST", "/token", {
    headers: {
      "content-type": form,
      authorization: `Basic ${Buffer.from(`${AUDIENCE}:web-secret-of-the-test-0123456789`).toString("base64")}`,
    },
    body: new URLSearchParams({
      grant_type: "authorization_code", code, redirect_uri: redirect, code_verifier: verifier,
    }).toString(),
  });
  const idToken = JSON.parse(answer.text).id_token;
  assert.ok(idToken, answer.text);
  return idToken;
}

/** An access token of the provider signed with `alg`. */
function accessToken(alg) {
  const body = new URLSearchParams({
    grant_type: "client_credentials", scope: "phone", resource: `https://bff.example/${alg}`,
  }).toString();
  const url = new URL(`${issuer}/token`);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, {
      method: "POST", ca: readFileSync(tls.ca),
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from("app:app-secret-of-the-test-0123456789").toString("base64")}`,
      },
    }, (res) => {
      let text = "";
      res.on("data", (chunk) => { text += chunk; });
      res.on("end", () => {
        const json = JSON.parse(text);
        if (!json.access_token) reject(new Error(`token endpoint: ${text}`));
        else resolve(json.access_token);
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** `serve` against the provider; `extra` BFF__ variables override the defaults. */
async function startService(extra = {}) {
  const [publicPort, adminPort] = await freePorts(2);
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("BFF__") || key === "RUST_LOG") delete env[key];
  Object.assign(env, {
    BFF__SERVER__LISTEN: `127.0.0.1:${publicPort}`,
    BFF__SERVER__ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
    BFF__UPSTREAM__BASE_URL: `${sandbox.url}/api`,
    BFF__UPSTREAM__APP_KEY: "sandbox-app-key",
    BFF__UPSTREAM__USERNAME: "sandbox",
    BFF__UPSTREAM__PASSWORD: "sandbox-password",
    BFF__AUTH__ISSUER: issuer,
    BFF__AUTH__AUDIENCE: AUDIENCE,
    BFF__AUTH__JWKS_URL: `${issuer}/jwks`,
    BFF__AUTH__CA_FILE: tls.ca,
    BFF__AUTH__TOKEN_TYPES: "at+jwt",
    BFF__IDENTITY__SOURCE: "claim",
    BFF__VERIFICATION__TOKEN_SECRET: randomBytes(32).toString("base64"),
    BFF__DATABASE__URL: `sqlite://${workdir}/db-${publicPort}.sqlite?mode=rwc`,
    BFF__RATE_LIMIT__BIND_PER_USER: "1000/hour",
    BFF__RATE_LIMIT__BIND_PER_PHONE: "1000/hour",
    // One user sends every request here, faster than a person would.
    BFF__RATE_LIMIT__REQUESTS_PER_USER: "off",
    BFF__ABUSE__PREFIX_BUDGET: "off",
    BFF__ABUSE__MODES__CONVERSION: "off",
    ...extra,
  });
  for (const [key, value] of Object.entries(extra)) if (value === undefined) delete env[key];
  const child = spawn(bin, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (chunk) => { log += chunk; });
  child.stderr.on("data", (chunk) => { log += chunk; });
  const service = {
    child, api: `http://127.0.0.1:${publicPort}`, admin: `http://127.0.0.1:${adminPort}`,
    log: () => log,
  };
  services.push(service);
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${service.admin}/healthz`);
      return service;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`serve did not start:\n${log}`);
}

async function ready(service) {
  return (await fetch(`${service.admin}/readyz`)).status;
}

async function waitReady(service) {
  for (let i = 0; i < 100; i++) {
    if ((await ready(service)) === 200) return;
    await sleep(100);
  }
  throw new Error(`never ready:\n${service.log()}`);
}

async function read(service, token) {
  const response = await fetch(`${service.api}/v1/me/phone-number`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return response.status;
}

async function bind(service, token) {
  const response = await fetch(`${service.api}/v1/me/phone-number`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ phoneNumber: "+1 310 890 4569" }),
  });
  return response.status;
}

/** `token`'s header and claims signed again with a fresh key of the same algorithm. */
async function resigned(token) {
  const header = decodeProtectedHeader(token);
  const forged = signingKey(header.alg, header.kid);
  const key = await importJWK(forged, header.alg);
  return new SignJWT(decodeJwt(token)).setProtectedHeader(header).sign(key);
}

before(async () => {
  assert.ok(bin, "BFF_BIN names the autoshares-bff binary");
  workdir = mkdtempSync(join(tmpdir(), "bff-idp-"));
  tls = certificates(workdir);
  const [port] = await freePorts(1);
  issuer = `https://localhost:${port}`;
  keys = ALGORITHMS.map((alg) => signingKey(alg, `key-${alg}`));
  provider = makeProvider(keys);
  server = createServer({ key: readFileSync(tls.key), cert: readFileSync(tls.cert) }, (req, res) => {
    if (req.url.startsWith("/jwks")) jwksFetches += 1;
    provider.callback()(req, res);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));

  const [sandboxPort] = await freePorts(1);
  const child = spawn(bin, ["sandbox", "--listen", `127.0.0.1:${sandboxPort}`], { stdio: "ignore" });
  sandbox = { child, url: `http://127.0.0.1:${sandboxPort}` };
});

after(() => {
  for (const service of services) service.child.kill("SIGKILL");
  sandbox?.child.kill("SIGKILL");
  server?.close();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

test("a token of every algorithm is accepted on read and bind, and one re-signed by another key is not", async () => {
  const service = await startService();
  await waitReady(service);
  for (const alg of ALGORITHMS) {
    const token = await accessToken(alg);
    const header = decodeProtectedHeader(token);
    assert.equal(header.alg, alg);
    assert.equal(header.typ, "at+jwt", "an RFC 9068 access token");
    assert.equal(await bind(service, token), 200, `bind with ${alg}:\n${service.log().slice(-2000)}`);
    assert.equal(await read(service, token), 200, `read with ${alg}`);
    assert.equal(await read(service, await resigned(token)), 401, `${alg} re-signed`);
  }
});

test("a rotated key is used without a restart, and a flood of unknown kids fetches little", async () => {
  const service = await startService();
  await waitReady(service);
  const before = jwksFetches;
  const fresh = signingKey("PS256", "key-PS256-rotated");
  keys = [fresh, ...keys.filter((k) => k.alg !== "PS256")];
  provider = makeProvider(keys);
  const token = await accessToken("PS256");
  assert.equal(decodeProtectedHeader(token).kid, "key-PS256-rotated");
  assert.equal(await read(service, token), 200, "the new kid is fetched and accepted");
  assert.equal(jwksFetches - before, 1, "one fetch for the new kid");

  const stranger = await importJWK(signingKey("PS256", "stranger"), "PS256");
  const flood = [];
  for (let i = 0; i < 200; i++) {
    const header = { alg: "PS256", typ: "at+jwt", kid: `unknown-${i}` };
    flood.push(new SignJWT(decodeJwt(token)).setProtectedHeader(header).sign(stranger));
  }
  const statuses = await Promise.all((await Promise.all(flood)).map((t) => read(service, t)));
  assert.ok(statuses.every((s) => s === 401), "unknown kids are refused");
  const fetched = jwksFetches - before - 1;
  console.log(`unknown-kid flood: 200 tokens, ${fetched} JWKS fetch(es)`);
  assert.ok(fetched <= 1, `at most one fetch per 10 s for all unknown kids, saw ${fetched}`);
});

test("without auth.ca_file the provider's JWKS cannot be trusted: unready, with the reason logged", async () => {
  const service = await startService({ BFF__AUTH__CA_FILE: undefined });
  const reason = /jwks not loaded yet.*UnknownIssuer|UnknownIssuer.*jwks not loaded yet/;
  for (let i = 0; i < 50 && !reason.test(service.log()); i++) await sleep(100);
  assert.match(service.log(), reason, "the reason is logged");
  const response = await fetch(`${service.admin}/readyz`);
  assert.equal(response.status, 503);
  assert.equal((await response.json()).jwks, "down");
  assert.equal(await read(service, await accessToken("PS256")), 401);
});

test("with auth.token_types at+jwt, an ID token of the same provider and audience is refused", async () => {
  const token = await idToken();
  const claims = decodeJwt(token);
  assert.equal(claims.aud, AUDIENCE, "the service's audience");
  assert.notEqual(decodeProtectedHeader(token).typ, "at+jwt");
  const typed = await startService();
  await waitReady(typed);
  assert.equal(await read(typed, token), 401, "an ID token is no access token");
  const untyped = await startService({ BFF__AUTH__TOKEN_TYPES: undefined });
  await waitReady(untyped);
  assert.notEqual(await read(untyped, token), 401, "without auth.token_types it would pass");
});
