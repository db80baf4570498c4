"""A headless Chromium driven over the DevTools protocol: open a page, wait for its rendered text, take screenshots."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket  # websocket-client (dev extra): Chromium's DevTools protocol is JSON over one websocket

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# --no-sandbox: Chromium refuses to start as root with its sandbox (CI containers run as root).
# --disable-dev-shm-usage: containers give /dev/shm 64 MB; Chromium crashes when it fills, so use /tmp instead.
# --disable-gpu: no GPU here; skips probing for one. The rest keep a fresh profile quiet and the page size fixed.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
         "--window-size=1600,1000", "--remote-debugging-port=0")  # port 0: Chromium picks one, no race


def find_chromium() -> str | None:
    """`$CHROMIUM`, else the first of the usual names on PATH."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One browser, one tab. `open(url)` loads a page; `wait_for_text(...)` polls `document.body.innerText` until
    every expected string is there (what a user would read, not the HTML source); `screenshot(path)` saves a PNG."""

    def __init__(self, binary: str, workdir: Path, start_timeout: float = 60.0) -> None:
        self.workdir = workdir
        profile = workdir / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a previous browser's port
        self.log_path = workdir / "chromium.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                         stdout=log, stderr=log, start_new_session=True)
        try:
            port = self._devtools_port(profile / "DevToolsActivePort", start_timeout)
            self.ws = websocket.create_connection(self._page_socket(port), timeout=30,
                                                  suppress_origin=True)  # DevTools rejects foreign Origins
        except BaseException:
            self.close()
            raise
        self._id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _devtools_port(self, active_port: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if active_port.is_file() and active_port.read_text().strip():
                return int(active_port.read_text().split()[0])
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"Chromium did not start (exit {self.proc.poll()}): {self.log_tail()}")

    @staticmethod
    def _page_socket(port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:  # noqa: S310
            targets = json.loads(response.read())
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def call(self, method: str, **params: Any) -> dict:
        """Send one command and return its result; events arriving meanwhile are dropped."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        """A fresh document each time (about:blank first), so text from the previous page never satisfies a wait."""
        self.call("Page.navigate", url="about:blank")
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, expected: list[str], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            missing = [s for s in expected if s not in text]
            if not missing:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"not rendered within {timeout:.0f} s: {missing}\n--- page text ---\n"
                                     f"{text[:4000]}")
            time.sleep(0.5)

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value (so it must be JSON: `!!el`, not `el`)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout:.0f} s: {expression}")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
