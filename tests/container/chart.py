#!/usr/bin/env python3
"""Runs the image the way the rendered Helm chart runs it, with podman.

    python3 tests/container/chart.py IMAGE SANDBOX_BINARY   (tests/container/run.sh calls it)

For each release below, the chart is rendered (by the team's lint-helm, which also
lints and schema-checks it), and the Job's and the Deployment's containers are run as the
manifests say: their user and group, a read-only root filesystem, every capability
dropped, no privilege escalation, their env and args, the ConfigMap's files, the items of
the Secret each mounts (and nothing more), and an emptyDir on /tmp. The only departures
are those of a host with no cluster: the host's network namespace (the listeners are put
on loopback ports through the chart's own values), and the Secret's values, made here.

- every secret: migrate as the Job; serve; /readyz; a link through the admin API; bind,
  complete with the SMS code, read and unbind through the container against the sandbox
  on the host, with an RS256 token from a JWKS on the host; SIGTERM exits 0 within the
  grace period; nothing written outside the mounted volumes;
- no admin token, and no Redis URL (with the memory backend): the same start and stop.

A container that exits or never turns ready fails the test, with its output.
"""

import base64
import itertools
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATABASE = os.environ.get("BFF_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BFF_TEST_REDIS_URL", "redis://127.0.0.1:6379")
TOOLS = os.environ["SHARED_TOOLS"]
ISSUER = "https://id.example.com/"
AUDIENCE = "autoshares-bff"
PHONE = "+13108904569"
USER = 1001


class Failed(Exception):
    pass


# The next of `free_ports`' candidates: runs one after another start at different places.
_NEXT_PORT = itertools.count(os.getpid())


def free_ports(count):
    """`count` distinct loopback ports for processes that bind them themselves, chosen as
    `free_port` in tests/common/mod.rs chooses them: in turn from 10 000 to 19 999, below
    the kernel's ephemeral range (so no outgoing connection is given one meanwhile), passing
    over ones in use, each held until all are found; where the ephemeral range starts
    lower, ports the kernel just gave."""
    first, span = 10_000, 10_000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            below = int(f.read().split()[0]) >= first + 2 * span
    except OSError:
        below = False
    candidates = (first + next(_NEXT_PORT) % span if below else 0 for _ in range(span))
    held = []
    try:
        for port in candidates:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            if len(held) == count:
                return [s.getsockname()[1] for s in held]
        raise RuntimeError("no free loopback ports")
    finally:
        for s in held:
            s.close()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """An RSA key, its JWKS served on a loopback port, and RS256 tokens signed with it."""

    def __init__(self, work):
        self.key = os.path.join(work, "idp.pem")
        subprocess.run(["openssl", "genrsa", "-out", self.key, "2048"], check=True, capture_output=True)
        modulus = subprocess.run(
            ["openssl", "rsa", "-in", self.key, "-noout", "-modulus"],
            check=True, capture_output=True, text=True,
        ).stdout.strip().split("=", 1)[1]
        jwks = {"keys": [{"kty": "RSA", "kid": "container-test", "alg": "RS256", "use": "sig",
                          "n": b64url(bytes.fromhex(modulus)), "e": "AQAB"}]}
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def token(self, subject):
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": "container-test"}
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now,
                  "exp": now + 600, "auth_time": now}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key],
            input=signing_input.encode(), check=True, capture_output=True,
        ).stdout
        return f"{signing_input}.{b64url(signature)}"


def call(method, url, token=None, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text


def render(work, name, sets):
    """The chart rendered (and linted, and schema-checked) with `sets`; its documents."""
    out = os.path.join(work, f"{name}.yaml")
    args = ["bash", os.path.join(TOOLS, "lint-helm"), os.path.join(REPO, "helm"), "-o", out]
    for key, value in sets.items():
        args += ["--set-string" if isinstance(value, str) else "--set", f"{key}={value}"]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise Failed(f"the chart does not render for '{name}':\n{result.stdout}{result.stderr}")
    with open(out, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]


def find(documents, kind, predicate=lambda d: True):
    found = [d for d in documents if d.get("kind") == kind and predicate(d)]
    if len(found) != 1:
        raise Failed(f"expected one {kind}, found {len(found)}")
    return found[0]


class Pod:
    """One container of a rendered pod spec, as podman arguments."""

    def __init__(self, spec, documents, secret_data, work, name):
        self.spec, self.documents, self.secret_data = spec, documents, secret_data
        self.container = spec["containers"][0]
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)

    def volume_args(self):
        args = []
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        group = self.spec.get("securityContext", {}).get("fsGroup")
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            access = "ro" if mount.get("readOnly") else "rw"
            if "emptyDir" in volume:
                size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
                args += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=1777"]
                continue
            host = os.path.join(self.dir, mount["name"])
            os.makedirs(host)
            if "configMap" in volume:
                cm = find(self.documents, "ConfigMap",
                          lambda d: d["metadata"]["name"] == volume["configMap"]["name"])
                files = {key: key for key in cm["data"]}
                values = cm["data"]
                mode = volume["configMap"].get("defaultMode", 0o644)
            elif "secret" in volume:
                items = volume["secret"].get("items")
                files = {i["key"]: i["path"] for i in items} if items else {k: k for k in self.secret_data}
                values = self.secret_data
                mode = volume["secret"].get("defaultMode", 0o644)
            else:
                raise Failed(f"volume {mount['name']}: a kind this test does not mount")
            for key, path in files.items():
                if key not in values:
                    raise Failed(f"volume {mount['name']}: no key {key}")
                file = os.path.join(host, path)
                with open(file, "w", encoding="utf-8") as f:
                    f.write(values[key])
                # As the kubelet does with fsGroup: the group owns it and may read it.
                os.chown(file, 0, group or 0)
                os.chmod(file, (mode | 0o040) if group else mode)
            os.chmod(host, 0o755)
            args += ["-v", f"{host}:{mount['mountPath']}:{access}"]
        return args

    def args(self, image, name):
        pod_security = self.spec.get("securityContext", {})
        security = {**pod_security, **self.container.get("securityContext", {})}
        if not security.get("runAsNonRoot") or not security.get("runAsUser"):
            raise Failed("the container does not run as a non-root user")
        args = ["podman", "run", "-d", "--name", name, "--network", "host",
                "--user", f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}"]
        if pod_security.get("fsGroup"):
            args += ["--group-add", str(pod_security["fsGroup"])]
        if security.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]
        for cap in security.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", cap]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for env in self.container.get("env", []):
            args += ["-e", f"{env['name']}={env['value']}"]
        args += self.volume_args()
        return args + [image] + self.container.get("args", [])


def podman(*args, check=True):
    result = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise Failed(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result


def logs(name):
    result = podman("logs", name, check=False)
    return (result.stdout + result.stderr)[-4000:]


def exit_code(name, within):
    """Waits up to `within` seconds for the container to end; its exit code, or None."""
    deadline = time.monotonic() + within
    while True:
        state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
        if state[0] in ("exited", "stopped"):
            return int(state[1])
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def wait_ready(name, admin):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if exit_code(name, 0) is not None:
            raise Failed(f"{name} exited before it was ready:\n{logs(name)}")
        try:
            status, body = call("GET", f"{admin}/readyz", timeout=2)
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(0.2)
    raise Failed(f"{name} never turned ready:\n{logs(name)}")


def parents(path):
    """`path` and each directory above it, up to the root's children."""
    while path not in ("/", ""):
        yield path
        path = os.path.dirname(path)


def check(condition, what):
    if not condition:
        raise Failed(what)
    print(f"  ok: {what}")


def release(image, name, sets, work, flow):
    """Renders a release, runs its Job and its Deployment's container, checks them."""
    print(f"release '{name}'")
    database = f"bff_test_container_{secrets.token_hex(4)}"
    subprocess.run(["psql", "-q", DATABASE, "-c", f"CREATE DATABASE {database}"], check=True)
    public, admin = free_ports(2)
    sets = {
        **sets,
        "config.server.listen": f"127.0.0.1:{public}",
        "config.server.admin_listen": f"127.0.0.1:{admin}",
        "config.redis.key_prefix": f"container-test-{secrets.token_hex(4)}:",
    }
    documents = render(work, name, sets)
    values = {
        "app-key": "sandbox-app-key",
        "password": "sandbox-password",
        "token-secret": base64.b64encode(os.urandom(32)).decode(),
        "database-url": f"{DATABASE.rsplit('/', 1)[0]}/{database}",
        "redis-url": REDIS,
        "admin-token": secrets.token_hex(32),
    }
    job = find(documents, "Job")["spec"]["template"]["spec"]
    deployment = find(documents, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    server = f"bff-{name}-{secrets.token_hex(3)}"
    migrate = f"{server}-migrate"
    try:
        podman(*Pod(job, documents, values, work, f"{name}-job").args(image, migrate)[1:])
        code = exit_code(migrate, 60)
        check(code == 0, f"migrate as the Job exits 0 (got {code}){'' if code == 0 else chr(10) + logs(migrate)}")

        podman(*Pod(spec, documents, values, work, f"{name}-pod").args(image, server)[1:])
        ready = wait_ready(server, f"http://127.0.0.1:{admin}")
        check(True, f"serve is ready: {ready}")
        if flow:
            flow(f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}", values["admin-token"])

        grace = int(json.loads(find(documents, "ConfigMap", lambda d: "config.json" in d.get("data", {}))
                               ["data"]["config.json"])["server"]["shutdown_grace_s"])
        check(spec["terminationGracePeriodSeconds"] > grace, "the pod's grace period is longer than the service's")
        started = time.monotonic()
        podman("kill", "--signal", "TERM", server)
        code = exit_code(server, grace + 5)
        took = time.monotonic() - started
        check(code == 0, f"SIGTERM: exit {code} after {took:.1f} s (grace {grace} s)")
        # podman itself makes the mount points (and their parents) in the container's layer.
        mounts = {m["mountPath"] for m in spec["containers"][0].get("volumeMounts", [])}
        made = {parent for m in mounts for parent in parents(m)}
        diff = json.loads(podman("diff", "--format", "json", server).stdout or "{}")
        changed = [path for paths in diff.values() for path in paths or [] if path not in made]
        check(not changed, f"nothing written outside the mounted volumes {changed}")
    finally:
        for container in (server, migrate):
            podman("rm", "-f", container, check=False)
        subprocess.run(["psql", "-q", DATABASE, "-c", f"DROP DATABASE IF EXISTS {database}"], check=False)


def main(image, sandbox_binary):
    work = tempfile.mkdtemp()
    [sandbox_port] = free_ports(1)
    sandbox = subprocess.Popen(
        [sandbox_binary, "sandbox", "--listen", f"127.0.0.1:{sandbox_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("BFF")},
    )
    idp = IdentityProvider(work)
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    common = {
        "config.upstream.base_url": f"{sandbox_url}/api",
        "config.upstream.username": "sandbox",
        "config.auth.jwks_url": idp.url,
        "config.auth.issuer": ISSUER,
        "config.auth.audience": AUDIENCE,
    }

    def whole_flow(public, admin, admin_token):
        status, body = call("PUT", f"{admin}/admin/v1/links/sub-container", admin_token,
                            {"autosharesUserId": USER})
        check(status in (200, 201), f"link through the admin API: {status} {body}")
        token = idp.token("sub-container")
        status, body = call("PUT", f"{public}/v1/me/phone-number", token, {"phoneNumber": PHONE})
        check(status == 200, f"bind: {status} {body.get('state') if status == 200 else body}")
        code = call("GET", f"{sandbox_url}/sandbox/sms?phoneNumber=%2B{PHONE[1:]}")[1]["code"]
        status, body = call("POST", f"{public}/v1/me/phone-number/verification", token,
                            {"verificationToken": body["verificationToken"], "code": code})
        check(status == 200 and body["state"] == "Active", f"complete: {status} {body}")
        status, body = call("GET", f"{public}/v1/me/phone-number", token)
        check(status == 200 and body["phoneNumber"] == PHONE, f"read: {status} {body}")
        status, body = call("DELETE", f"{public}/v1/me/phone-number", token)
        check(status == 204, f"unbind: {status}")
        status, body = call("GET", f"{admin}/admin/v1/links/sub-container/events", admin_token)
        outcomes = [(e["action"], e["outcome"]) for e in body["events"]]
        check(outcomes == [("unbind", "ok"), ("complete", "ok"), ("bind", "ok")],
              f"the audit trail in the database: {outcomes}")

    try:
        release(image, "every-secret", common, work, whole_flow)
        release(image, "no-admin-token", {**common, "secrets.keys.adminToken": ""}, work, None)
        release(image, "no-redis-url", {**common, "secrets.keys.redisUrl": "",
                                        "config.rate_limit.backend": "memory"}, work, None)
    except Failed as failure:
        print(f"container test FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        sandbox.terminate()
        idp.server.shutdown()
    print("container test: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
