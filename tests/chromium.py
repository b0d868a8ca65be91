"""Drive headless Chromium from tests over the DevTools protocol, with no extra Python
dependency: Chromium's `--remote-debugging-pipe` reads commands from its fd 3 and writes
answers and events to its fd 4, as JSON messages ended by a NUL byte.

Debian's `chromium` package provides the browser (`make chromium` installs it; `make
test` does so when it is missing). The browser gets a fresh profile, no sandbox (tests
run as root), and every flag that keeps it from reaching the network on its own.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe"]
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Chromium is not installed: `make chromium` installs Debian's "
                       "(apt-get install -y chromium)")


class Browser:
    """One headless Chromium with one page, driven over the DevTools pipe."""

    def __init__(self, width: int = 1280, height: int = 1200) -> None:
        self.profile = tempfile.mkdtemp(prefix="atoll-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser expects the pipe on fds 3 and 4: a Python shim puts it there
        shim = (f"import os; os.dup2({to_browser_r}, 3); os.dup2({from_browser_w}, 4); "
                f"os.execv({chromium_path()!r}, {[chromium_path(), *FLAGS, '--user-data-dir=' + self.profile, 'about:blank']!r})")
        self.proc = subprocess.Popen([sys.executable, "-c", shim],
                                     pass_fds=(to_browser_r, from_browser_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.session = ""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": False})

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout_s: float = 15.0) -> dict[str, Any]:
        """Send a command (to the page once attached) and wait for its answer."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            data = os.read(self._from_browser, 1 << 20)
            if not data:
                raise RuntimeError("Chromium closed its DevTools pipe (it exited)")
            self._buffer += data
            if len(self._buffer) > MAX_MESSAGE_BYTES:
                raise RuntimeError("DevTools message too large")
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def goto(self, url: str, timeout_s: float = 15.0) -> None:
        """Navigate and wait until the new document is parsed. Page.navigate answers once
        the navigation commits, while the document is still loading: until the parser
        reaches an element, getElementById finds nothing (on a loaded machine that lasted
        past the first evaluate)."""
        answer = self.call("Page.navigate", {"url": url}, timeout_s)
        if answer.get("errorText"):
            raise RuntimeError(f"navigating to {url} failed: {answer['errorText']}")
        parsed = ("document.readyState !== 'loading' && "
                  "location.href !== 'about:blank'")
        if not self.wait_for(parsed, timeout_s, 0.02):
            raise TimeoutError(f"{url} did not finish loading in {timeout_s} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, interval_s: float = 0.05) -> Any:
        """Evaluate until the value is truthy; return it (None on timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval_s)
        return None

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode()
                     + b"\0")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)
