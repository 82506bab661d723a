"""deploy/docker-compose.yml for real, on the docker-lab engine (tests/docker/docker-lab.sh).

Builds the three images (frontdoor, the demo app, Pebble), brings up the stack with the Pebble
overlay so that frontdoor obtains its certificate over ACME inside the stack, and drives it
through the ports published on 127.0.0.1 only:
  - HTTPS with the certificate Pebble issued; all 3 app replicas answer;
  - the runtime image: non-root, no shell, `frontdoor health` as its health check;
  - an edited config + `docker-compose kill -s HUP` takes effect with no failed request;
  - `--scale app=4`: the 4th replica answers within the resolve interval;
  - a replica stopped under load: no failed GET;
  - `docker-compose stop frontdoor` exits 0 within 2 seconds; `down -v` leaves nothing.
Exits 77 (CTest: skipped) when the docker-lab engine is not up.
"""

import http.client
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
LAB = os.path.join(HERE, "docker-lab.sh")
DEPLOY = os.path.join(TOP, "deploy")

DOMAIN = "frontdoor.test"
HTTP_PORT = 18080
HTTPS_PORT = 18443
PEBBLE_MGMT_PORT = 18500
PROJECT = "ft%d" % os.getpid()
RESOLVE_INTERVAL = 5.0  # upstreams.app.resolve_interval in deploy/config/frontdoor.yaml
SKIP = 77


def lab_env():
    """The docker-lab client environment (DOCKER_HOST, PATH, ...), or None if it is not up."""
    if subprocess.run([LAB, "status"], capture_output=True).returncode != 0:
        return None
    out = subprocess.run([LAB, "env"], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            env.update(w.split("=", 1) for w in words[1:] if "=" in w)
        elif words[:1] == ["unset"]:
            for name in words[1:]:
                env.pop(name, None)
    return env


class Stack:
    """One compose project: deploy/docker-compose.yml + the Pebble overlay, ports on 127.0.0.1."""

    def __init__(self, env, config_dir):
        self.env = dict(env, FRONTDOOR_DOMAIN=DOMAIN, BIND_ADDRESS="127.0.0.1",
                        HTTP_PORT=str(HTTP_PORT), HTTPS_PORT=str(HTTPS_PORT),
                        PEBBLE_MGMT_PORT=str(PEBBLE_MGMT_PORT), FRONTDOOR_CONFIG_DIR=config_dir)

    def run(self, *args, timeout=120, check=True):
        cmd = ["docker-compose", "-p", PROJECT,
               "-f", os.path.join(DEPLOY, "docker-compose.yml"),
               "-f", os.path.join(DEPLOY, "docker-compose.pebble.yml")] + list(args)
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(args), result.returncode,
                                                            result.stdout, result.stderr))
        return result.stdout

    def docker(self, *args, timeout=60, check=True):
        result = subprocess.run(["docker"] + list(args), env=self.env, capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError("docker %s failed (%d):\n%s%s" % (
                " ".join(args), result.returncode, result.stdout, result.stderr))
        return result

    def containers(self, service, all_states=False):
        args = ["ps", "-q"] + (["-a"] if all_states else []) + [service]
        return [c for c in self.run(*args).split() if c]

    def inspect(self, container):
        return json.loads(self.docker("inspect", container).stdout)[0]

    def logs(self, service):
        return self.run("logs", "--no-color", service, check=False)


def tls_context(root_pem):
    ctx = ssl.create_default_context(cadata=root_pem)
    ctx.check_hostname = True
    return ctx


class Client:
    """HTTPS to DOMAIN through 127.0.0.1:HTTPS_PORT with SNI and verification, keep-alive."""

    def __init__(self, ctx, timeout=5):
        self.ctx = ctx
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        conn = http.client.HTTPSConnection(DOMAIN, HTTPS_PORT, context=self.ctx,
                                           timeout=self.timeout)
        raw = socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=self.timeout)
        conn.sock = self.ctx.wrap_socket(raw, server_hostname=DOMAIN)
        return conn

    def get(self, path="/"):
        """(status, X-Worker, body); a stale keep-alive connection is replaced once."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
                return resp.status, resp.getheader("X-Worker"), body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def peer_certificate(self):
        if self.conn is None:
            self.conn = self._connect()
        return self.conn.sock.getpeercert()

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Load:
    """Keep-alive GET loops on |clients| connections until stop(); records every outcome.

    A connection that the proxy closed between requests (keep-alive race) is reopened and the
    request sent again, as any HTTP client does; any other error or a non-200 is a failure."""

    def __init__(self, ctx, clients=4, duration_limit=120):
        self.ctx = ctx
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.workers = {}
        self.deadline = time.monotonic() + duration_limit
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self):
        client = Client(self.ctx)
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            try:
                status, worker, body = client.get("/")
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failures.append(repr(e))
                client.close()
                continue
            with self.lock:
                if status == 200:
                    self.ok += 1
                    self.workers[worker] = self.workers.get(worker, 0) + 1
                else:
                    self.failures.append("%d %r" % (status, body[:200]))
            time.sleep(0.005)
        client.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=30)

    def snapshot(self):
        with self.lock:
            return self.ok, list(self.failures), dict(self.workers)


def wait_for(predicate, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last error: %r)" %
                         (timeout, what, last))


def worker_ids(stack, container_ids):
    """The X-Worker values the demo app answers with: container host name / pid 1."""
    return {stack.inspect(c)["Config"]["Hostname"] + "/1" for c in container_ids}


class ComposeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.env = lab_env()
        cls.config_dir = tempfile.mkdtemp(prefix="fd-compose-")
        shutil.copy(os.path.join(DEPLOY, "config", "frontdoor.yaml"), cls.config_dir)
        os.chmod(cls.config_dir, 0o755)
        cls.stack = Stack(cls.env, cls.config_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.config_dir, ignore_errors=True)

    def tearDown(self):
        self.stack.run("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=120)
        left = self.stack.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=" +
                                 PROJECT).stdout.split()
        self.assertEqual(left, [], "containers left after down")
        volumes = self.stack.docker("volume", "ls", "-q", "--filter",
                                    "label=com.docker.compose.project=" + PROJECT).stdout.split()
        self.assertEqual(volumes, [], "volumes left after down -v")

    def test_compose_stack(self):
        try:
            self.compose_stack()
        except BaseException:
            sys.stderr.write(self.stack.run("logs", "--no-color", "--tail=60", check=False))
            raise

    def compose_stack(self):
        stack = self.stack
        t0 = time.monotonic()
        stack.run("build", timeout=900)
        print("images built in %.0fs" % (time.monotonic() - t0), file=sys.stderr)
        self.check_image()

        stack.run("up", "-d", timeout=300)
        pebble_ca = stack.run("exec", "-T", "pebble", "cat", "/pebble-ca/ca.pem")
        roots_ctx = tls_context(pebble_ca)
        roots_url = "https://127.0.0.1:%d/roots/0" % PEBBLE_MGMT_PORT
        roots_ctx.check_hostname = False  # Pebble's HTTPS certificate names "pebble"
        issuer_root = wait_for(
            lambda: urllib.request.urlopen(roots_url, context=roots_ctx, timeout=5).read().decode(),
            60, what="Pebble's management API on 127.0.0.1:%d" % PEBBLE_MGMT_PORT)
        ctx = tls_context(issuer_root)

        # Certificate: issued by Pebble over ACME inside the stack, verified against its root.
        def issued_certificate():
            client = Client(ctx)
            try:
                return client.peer_certificate()
            finally:
                client.close()
        cert = wait_for(issued_certificate, 90,
                        what="HTTPS with a certificate Pebble issued for " + DOMAIN)
        issuer = dict(x[0] for x in cert["issuer"])
        self.assertIn("Pebble", issuer.get("commonName", ""), cert)
        self.assertIn(("DNS", DOMAIN), cert["subjectAltName"], cert)
        self.assertIn('"acme certificate issued"', stack.logs("frontdoor"))

        # Balancing: every replica answers, and nothing else does.
        apps = stack.containers("app")
        self.assertEqual(len(apps), 3, apps)
        expected = worker_ids(stack, apps)
        client = Client(ctx)
        seen = wait_for(lambda: (lambda s: s if s == expected else None)(
            {client.get("/")[1] for _ in range(12)}), 30, what="all 3 replicas answering")
        self.assertEqual(seen, expected)
        status, _, body = client.get("/echo")
        self.assertEqual(status, 200)
        echo = json.loads(body)
        self.assertEqual(echo["headers"].get("x-forwarded-proto"), "https", echo)
        client.close()

        # Port 80 redirects to HTTPS.
        plain = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=5)
        plain.request("GET", "/some/path?q=1", headers={"Host": DOMAIN})
        resp = plain.getresponse()
        resp.read()
        plain.close()
        self.assertEqual((resp.status, resp.getheader("Location")),
                         (308, "https://%s:%d/some/path?q=1" % (DOMAIN, HTTPS_PORT)))

        frontdoor = stack.containers("frontdoor")[0]
        wait_for(lambda: stack.inspect(frontdoor)["State"]["Health"]["Status"] == "healthy", 40,
                 what="the frontdoor container's HEALTHCHECK to report healthy")

        # Re-resolution of a shuffled but unchanged answer publishes nothing.
        quiet_from = len(stack.logs("frontdoor").splitlines())
        time.sleep(2 * RESOLVE_INTERVAL + 1)
        quiet = stack.logs("frontdoor").splitlines()[quiet_from:]
        self.assertEqual([line for line in quiet if '"upstream servers"' in line], [],
                         "re-resolution with the same replicas must not republish")

        self.check_reload(stack, ctx)
        self.check_scale_and_stop(stack, ctx, expected)

        # docker-compose stop: SIGTERM to frontdoor as PID 1, drained and gone at once.
        t = time.monotonic()
        stack.run("stop", "-t", "10", "frontdoor")
        stop_seconds = time.monotonic() - t
        state = stack.inspect(frontdoor)["State"]
        print("docker-compose stop frontdoor: %.2fs, exit %d" % (stop_seconds, state["ExitCode"]),
              file=sys.stderr)
        self.assertLess(stop_seconds, 2.0)
        self.assertEqual((state["Status"], state["ExitCode"]), ("exited", 0))
        self.assertIn('"msg":"stopped"', stack.logs("frontdoor"))

    def check_image(self):
        """The runtime image: small, non-root, no shell, a health check that needs none."""
        stack = self.stack
        image = json.loads(stack.docker("image", "inspect", "frontdoor:local").stdout)[0]
        size_mb = image["Size"] / 1e6
        print("frontdoor:local image: %.1f MB" % size_mb, file=sys.stderr)
        self.assertLess(size_mb, 30, "runtime image over the 30 MB goal")
        config = image["Config"]
        self.assertEqual(config["User"], "10001:10001")
        self.assertEqual(config["StopSignal"], "SIGTERM")
        self.assertEqual(config["Healthcheck"]["Test"][:3],
                         ["CMD", "/usr/local/bin/frontdoor", "health"])
        self.assertIn("/var/lib/frontdoor", config["Volumes"])
        for shell in ("/bin/sh", "/bin/bash", "/usr/bin/apt-get"):
            r = stack.docker("run", "--rm", "--entrypoint", shell, "frontdoor:local", "-c", "true",
                             check=False)
            self.assertNotEqual(r.returncode, 0, "%s exists in the runtime image" % shell)
        r = stack.docker("run", "--rm", "-e", "FRONTDOOR_DOMAIN=example.com", "frontdoor:local",
                         "--check")
        self.assertIn("configuration OK", r.stdout)
        r = stack.docker("run", "--rm", "frontdoor:local", "--check", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FRONTDOOR_DOMAIN is not set", r.stderr)

    def check_reload(self, stack, ctx):
        """An edited config and SIGHUP: the new route serves, no request of the load fails."""
        path = os.path.join(self.config_dir, "frontdoor.yaml")
        with open(path) as f:
            original = f.read()
        edited = original.replace(
            "routes:\n",
            "routes:\n  - match: {path_prefix: /reload-probe/}\n    upstream: closed\n", 1)
        edited = edited.replace(
            "upstreams:\n",
            "upstreams:\n  closed:\n    servers: [\"127.0.0.1:9\"]\n    retries: 0\n", 1)
        self.assertNotEqual(edited, original)
        probe = Client(ctx)
        self.assertEqual(probe.get("/reload-probe/x")[0], 200, "the route exists before reload")
        with Load(ctx) as load:
            wait_for(lambda: load.snapshot()[0] >= 20, 20, what="load running")
            with open(path, "w") as f:  # in place: the directory is what the container mounts
                f.write(edited)
            stack.run("kill", "-s", "HUP", "frontdoor")
            status = wait_for(lambda: (lambda s: s if s != 200 else None)(
                probe.get("/reload-probe/x")[0]), 10, what="the reloaded route")
            before = load.snapshot()[0]
            wait_for(lambda: load.snapshot()[0] >= before + 20, 20, what="load after reload")
        ok, failures, _ = load.snapshot()
        probe.close()
        self.assertEqual(status, 502)
        self.assertEqual(failures, [], "requests failed across the reload")
        self.assertGreater(ok, 40)
        self.assertIn('"configuration reloaded"', stack.logs("frontdoor"))

    def check_scale_and_stop(self, stack, ctx, three):
        """--scale app=4 reaches the new replica by re-resolution; stopping one loses nothing."""
        with Load(ctx) as load:
            t = time.monotonic()
            stack.run("up", "-d", "--no-recreate", "--scale", "app=4", timeout=120)
            apps = stack.containers("app")
            self.assertEqual(len(apps), 4, apps)
            four = worker_ids(stack, apps)
            fourth = (four - three).pop()
            wait_for(lambda: load.snapshot()[2].get(fourth, 0) > 0,
                     RESOLVE_INTERVAL + 5, interval=0.1, what="the 4th replica to answer")
            print("4th replica answered %.1fs after scale-up" % (time.monotonic() - t),
                  file=sys.stderr)

            victim = next(c for c in apps if worker_ids(stack, [c]) != {fourth})
            gone = worker_ids(stack, [victim]).pop()
            stack.docker("stop", "-t", "5", victim, timeout=30)
            stopped_at = load.snapshot()[2].get(gone, 0)
            ok_at_stop = load.snapshot()[0]
            wait_for(lambda: load.snapshot()[0] >= ok_at_stop + 200, 30,
                     what="200 more requests after stopping a replica")
        ok, failures, workers = load.snapshot()
        self.assertEqual(failures, [], "GETs failed while a replica stopped")
        self.assertEqual(workers.get(gone, 0), stopped_at, "the stopped replica still answered")
        self.assertEqual(set(workers) - four, set(), workers)


def main():
    if lab_env() is None:
        print("SKIP: the docker-lab engine is not up (see the docker_lab_up test)")
        return SKIP
    if shutil.which("docker-compose") is None:
        print("SKIP: docker-compose is not installed")
        return SKIP
    result = unittest.main(exit=False, verbosity=2).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
