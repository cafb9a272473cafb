#!/usr/bin/env python3
"""The demo page, end to end, in headless Chromium through WebDriver.

Serves web/dist/ (built by scripts/build_web.sh) on 127.0.0.1, opens it in
Chromium driven by chromedriver (the W3C WebDriver protocol, spoken here with
the standard library only), trains Iris for a few epochs with the page's own
controls, then the LeNet on a small MultiMNIST subset, and checks that the MTL-versus-STL table appears with finite
numbers, that the curves were drawn and that Δm% is shown. Saves a
screenshot, then runs the page's W-iris benchmark and prints its steps/s.

    python3 scripts/browser_e2e.py [--epochs 20] [--method pcgrad]
        [--screenshot target/browser/web_demo.png] [--bench-steps 500]

Exits non-zero, saying why, on any failure (including a browser with no
WebGPU adapter: this test never skips).
"""

import argparse
import base64
import functools
import http.server
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/lib/chromium/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--window-size=1480,1180"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript"}

    def log_message(self, *args):
        pass


class WebDriver:
    def __init__(self, port, flags=FLAGS):
        self.base = f"http://127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": flags},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=900) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.read().decode()[:2000]}") from None

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_state(self, wanted, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.js("return document.body.dataset.state || ''")
            if state in wanted:
                return state
            if state in ("error", "no-webgpu"):
                raise RuntimeError(f"page state {state}: {self.messages()}")
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout} s waiting for {wanted}: {self.messages()}")

    def messages(self):
        return self.js("return [document.getElementById('adapter').textContent,"
                       " document.getElementById('progress').textContent].join(' | ')")

    def screenshot(self, path):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)

    def quit(self):
        try:
            self.s("DELETE", "")
        except Exception:
            pass


def train_through_the_page(wd, page, settings, tasks, screenshot):
    """Set the page's controls (`settings`: control id -> value, in order;
    the data set first, since choosing it resets the epochs), press train,
    and check the table has `tasks` rows of finite numbers and a Δm% line."""
    wd.go(page)
    wd.wait_state({"ready"}, 120)
    adapter = wd.js("return document.getElementById('adapter').textContent")
    print(f"page ready: {adapter}")
    wd.js("""
        const set = (id, v) => { const e = document.getElementById(id); e.value = v;
                                 e.dispatchEvent(new Event('change')); };
        for (const [id, v] of arguments[0]) set(id, v);
        document.getElementById('train').click();""", [[k, str(v)] for k, v in settings.items()])
    t0 = time.time()
    wd.wait_state({"trained"}, 900)
    took = time.time() - t0
    got = wd.js("""
        const cells = [...document.querySelectorAll('#table tbody tr')]
            .map(tr => [...tr.children].map(td => td.textContent.trim()));
        return { cells, delta: document.getElementById('delta-m')?.textContent ?? null };""")
    rows = got["cells"]
    if [r[0] for r in rows] != tasks:
        raise RuntimeError(f"expected the task rows {tasks} in the table, found {rows}")
    for task, metric, mtl, stl in rows:
        for v in (mtl, stl):
            if not math.isfinite(float(v)):
                raise RuntimeError(f"{task}: not a finite number: {v!r}")
    if not got["delta"] or "Δm%" not in got["delta"]:
        raise RuntimeError("no Δm% line under the table")
    dm = float(got["delta"].split("=")[1].split()[0])
    if not math.isfinite(dm):
        raise RuntimeError(f"Δm% is not finite: {got['delta']}")
    # The loss chart has ink in it (the curves were drawn, not only the axes).
    coloured = wd.js("""
        const c = document.getElementById('loss'), d = c.getContext('2d')
            .getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4)
            if (Math.abs(d[i] - d[i + 1]) > 60 || Math.abs(d[i + 1] - d[i + 2]) > 60) n++;
        return n;""")
    if coloured < 200:
        raise RuntimeError(f"the loss chart shows no curves ({coloured} coloured pixels)")
    wd.screenshot(screenshot)
    print(f"trained {settings}, with baselines, in {took:.1f} s")
    for r in rows:
        print("  " + " | ".join(r))
    print(f"  {got['delta'].split('(')[0].strip()}")
    print(f"screenshot: {os.path.relpath(screenshot, ROOT)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--method", default="pcgrad")
    ap.add_argument("--screenshot", default=os.path.join(ROOT, "target/browser/web_demo.png"))
    ap.add_argument("--bench-steps", type=int, default=500)
    ap.add_argument("--bench-only", action="store_true", help="skip the training test")
    args = ap.parse_args()

    dist = os.path.join(ROOT, "web/dist")
    if not os.path.exists(os.path.join(dist, "index.html")):
        sys.exit("web/dist/ is missing: run scripts/build_web.sh first")
    web_port = free_port()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", web_port), functools.partial(Quiet, directory=dist))
    threading.Thread(target=server.serve_forever, daemon=True).start()

    driver_port = free_port()
    chromedriver = subprocess.Popen([CHROMEDRIVER, f"--port={driver_port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wd = None
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{driver_port}/status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        wd = WebDriver(driver_port)
        page = f"http://127.0.0.1:{web_port}/"

        # 1. Train through the page's controls, as a reader would.
        if not args.bench_only:
            train_through_the_page(wd, page, {"method": args.method, "epochs": args.epochs},
                                   ["species", "petal_length", "petal_width"], args.screenshot)
            # The LeNet on a small MultiMNIST subset (convolutions in WebGPU);
            # two epochs, so that the loss chart has a line to draw.
            train_through_the_page(wd, page, {"dataset": "multimnist", "digits": 100,
                                              "method": "mgda", "epochs": 2},
                                   ["left", "right"],
                                   args.screenshot.replace(".png", "_multimnist.png"))

        # 2. A browser without WebGPU is told so, in words.
        if not args.bench_only:
            no_gpu = WebDriver(driver_port, [f for f in FLAGS if f != "--enable-unsafe-webgpu"]
                               + ["--disable-features=WebGPU"])
            try:
                no_gpu.go(page)
                deadline = time.time() + 60
                while no_gpu.js("return document.body.dataset.state || ''") != "no-webgpu":
                    if time.time() > deadline:
                        raise RuntimeError("without WebGPU the page did not say so: "
                                           + no_gpu.messages())
                    time.sleep(0.3)
                said = no_gpu.js("return document.getElementById('adapter').textContent")
                if "WebGPU" not in said or no_gpu.js("return !document.getElementById('train').disabled"):
                    raise RuntimeError(f"without WebGPU: {said!r}, and train must stay disabled")
                print(f"without WebGPU the page says: {said[:90]}…")
            finally:
                no_gpu.quit()

        # 3. The W-iris benchmark (WORKLOADS.md) in the page.
        if args.bench_steps > 0:
            wd.go(page + f"?bench={args.bench_steps}")
            wd.wait_state({"benched"}, 600)
            sps = wd.js("return document.getElementById('progress').dataset.stepsPerS")
            adapter = wd.js("return document.getElementById('adapter').textContent")
            print(f"workload=W-iris browser steps_per_s={sps} steps={args.bench_steps} adapter=\"{adapter.removeprefix('Adapter: ')}\"")
        print("browser end-to-end: ok")
    finally:
        if wd:
            wd.quit()
        chromedriver.terminate()
        server.shutdown()


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        sys.exit(f"browser end-to-end FAILED: {e}")
