"""The web page in a real browser: Debian's headless Chromium driven by selenium and chromedriver.

1. The daemon (API on) hears a scripted recording on stdin; the page shows its label change from
   male to female live, and the test takes the README's screenshot of it.
2. ``voicegender serve`` and Chromium's fake microphone playing a WAV file: "Try it with this
   browser's microphone" streams getUserMedia -> AudioWorklet -> 16-bit PCM over the WebSocket and
   the page lists the right decisions.

Set VOICEGENDER_SCREENSHOT to a path to keep the screenshot (the README's is made this way).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from voicegender.wavio import read_wav, write_wav

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser(extra: list[str] | None = None) -> webdriver.Chrome:
    for tool in (CHROMIUM, CHROMEDRIVER):
        assert Path(tool).exists(), (
            f"{tool} missing: apt install chromium chromium-driver (scripts/setup does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=800,900",
    ]
    for arg in [*flags, "--autoplay-policy=no-user-gesture-required", *(extra or [])]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def start(args: list[str], pattern: str, **popen: Any) -> tuple[subprocess.Popen[bytes], str, list[str]]:
    """Start a voicegender command; (process, base URL found in its output, output lines)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicegender.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen,
    )  # fmt: skip
    lines: list[str] = []
    found: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            match = re.search(pattern, line)
            if match:
                found.put(match.group(1))

    threading.Thread(target=drain, daemon=True).start()
    try:
        return proc, found.get(timeout=60), lines
    except queue.Empty:
        proc.kill()
        pytest.fail("did not start: " + "".join(lines))


def texts(driver: webdriver.Chrome, css: str) -> list[str]:
    return [el.get_attribute("data-label") for el in driver.find_elements(By.CSS_SELECTOR, css)]


@pytest.fixture
def chrome() -> Iterator[Any]:
    drivers: list[webdriver.Chrome] = []

    def make(extra: list[str] | None = None) -> webdriver.Chrome:
        drivers.append(browser(extra))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.quit()


def test_page_follows_the_daemon(chrome, fixtures_dir, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[api]\nenabled = true\nport = 0\n[decision_log]\nenabled = false\n")
    proc, base, lines = start(
        ["run", "--config", str(config), "--input", "-", "--input-rate", "16000", "--gpio", "mock"],
        r"API and web page on (http://127\.0\.0\.1:\d+)",
        stdin=subprocess.PIPE,
    )
    try:
        driver = chrome()
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.1)
        wait.until(lambda d: d.find_element(By.ID, "connection").text == "live")
        assert driver.find_element(By.ID, "no-daemon").is_displayed() is False
        audio, rate = read_wav(fixtures_dir / "demo_male_then_female.wav")
        pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2").tobytes()
        gap = bytes(2 * 2 * rate)  # 2 s of silence after each part: the utterance's final decision comes
        split = 2 * 6 * rate  # 6 s: inside the pause between the man and the woman
        assert proc.stdin is not None
        proc.stdin.write(pcm[:split] + gap)
        proc.stdin.flush()
        label = driver.find_element(By.ID, "label")
        wait.until(
            lambda d: (
                label.get_attribute("data-label") == "male" and label.get_attribute("data-final") == "true"
            )
        )
        assert texts(driver, "#decisions li") == ["male"]
        assert "on" in driver.find_element(By.ID, "led-male").get_attribute("class").split()
        proc.stdin.write(pcm[split:] + gap)
        proc.stdin.flush()
        wait.until(
            lambda d: (
                label.get_attribute("data-label") == "female" and label.get_attribute("data-final") == "true"
            )
        )
        assert texts(driver, "#decisions li") == ["female", "male"]  # newest first
        assert "on" in driver.find_element(By.ID, "led-female").get_attribute("class").split()
        assert "on" not in driver.find_element(By.ID, "led-male").get_attribute("class").split()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline rect")) == 2
        p = float(driver.find_element(By.ID, "pvalue").text)
        assert p >= 0.65
        shot = tmp_path / "page.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        keep = os.environ.get("VOICEGENDER_SCREENSHOT")
        if keep:
            shutil.copyfile(shot, keep)
        logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert logs == [], logs
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0, "".join(lines)
    assert not any("Traceback" in line for line in lines), "".join(lines)


def talk_wav(fixtures_dir: Path, tmp_path: Path) -> Path:
    """What Chromium plays as its microphone, in a loop: a man, a pause, a woman, a pause, again."""
    man, rate = read_wav(fixtures_dir / "male_1320.wav")
    woman, rate2 = read_wav(fixtures_dir / "female_3575.wav")
    assert rate == rate2
    pause = np.zeros(2 * rate, dtype=np.float32)
    wav = tmp_path / "talk.wav"
    write_wav(wav, np.concatenate([man, pause, woman, pause]), rate)
    return wav


def fake_microphone(wav: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


def check_microphone(driver: webdriver.Chrome, url: str, token: str | None = None) -> None:
    """Load the page, (give the token,) stream the fake microphone, expect male then female."""
    driver.get(url)
    wait = WebDriverWait(driver, 90, poll_frequency=0.2)
    if token:
        wait.until(lambda d: d.find_element(By.ID, "token-form").is_displayed())
        driver.find_element(By.ID, "token-input").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(lambda d: d.find_element(By.ID, "no-daemon").is_displayed())
    assert driver.execute_script("return window.isSecureContext") is True
    driver.find_element(By.ID, "mic-start").click()
    wait.until(lambda d: d.find_element(By.ID, "mic-status").text.startswith("streaming at"))
    wait.until(lambda d: len(texts(d, "#mic-decisions li")) >= 2)
    decided = texts(driver, "#mic-decisions li")[::-1]  # oldest first
    assert decided[:2] == ["male", "female"], decided
    driver.find_element(By.ID, "mic-stop").click()
    wait.until(lambda d: d.find_element(By.ID, "mic-status").text == "stopped")
    logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if token:  # the first request, without the token, is how the page learns it needs one
        logs = [e for e in logs if not e["message"].endswith("status of 401 (Unauthorized)")]
    assert logs == [], logs


def test_browser_microphone(chrome, fixtures_dir, tmp_path) -> None:
    wav = talk_wav(fixtures_dir, tmp_path)
    config = tmp_path / "config.toml"
    config.write_text("")
    proc, base, lines = start(
        ["serve", "--config", str(config), "--port", "0"], r"web page on (http://127\.0\.0\.1:\d+)/"
    )
    try:
        check_microphone(chrome(fake_microphone(wav)), base + "/")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(lines)


def lan_address() -> str | None:
    """This machine's address on its network (the source of its default route), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_browser_microphone_on_the_lan(chrome, fixtures_dir, tmp_path) -> None:
    # From another machine the page is not on localhost: the browser gives it the microphone only
    # over HTTPS, and the server off loopback wants the token.
    from test_api import self_signed

    address = lan_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    wav = talk_wav(fixtures_dir, tmp_path)
    cert, key = self_signed(tmp_path, address)
    token = "lan-token-0123456789abcdef"
    (tmp_path / "token").write_text(token)
    config = tmp_path / "config.toml"
    config.write_text("")
    proc, base, lines = start(
        ["serve", "--config", str(config), "--port", "0", "--bind", "0.0.0.0", "--token-file",
         str(tmp_path / "token"), "--tls-cert", str(cert), "--tls-key", str(key)],
        r"web page on https://0\.0\.0\.0:(\d+)/",
    )  # fmt: skip
    try:
        # The test's certificate is not in the browser's trust store; a user accepts it once.
        driver = chrome([*fake_microphone(wav), "--ignore-certificate-errors"])
        check_microphone(driver, f"https://{address}:{base}/", token)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(lines)


def test_page_asks_for_the_token_once(chrome, tmp_path) -> None:
    token = "page-token-0123456789abcdef"
    (tmp_path / "token").write_text(token + "\n")
    config = tmp_path / "config.toml"
    config.write_text("")
    proc, base, lines = start(
        ["serve", "--config", str(config), "--port", "0", "--token-file", str(tmp_path / "token")],
        r"web page on (http://127\.0\.0\.1:\d+)/",
    )
    try:
        driver = chrome()
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.1)
        wait.until(lambda d: d.find_element(By.ID, "token-form").is_displayed())
        assert driver.find_element(By.ID, "connection").text == "token needed"
        driver.find_element(By.ID, "token-input").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait.until(lambda d: d.find_element(By.ID, "connection").text == "no microphone here")
        assert not driver.find_element(By.ID, "token-form").is_displayed()
        driver.refresh()  # remembered in this browser: not asked again
        wait.until(lambda d: d.find_element(By.ID, "connection").text == "no microphone here")
        assert not driver.find_element(By.ID, "token-form").is_displayed()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(lines)


def test_page_fits_a_phone(chrome, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    proc, base, lines = start(
        ["serve", "--config", str(config), "--port", "0"], r"web page on (http://127\.0\.0\.1:\d+)/"
    )
    try:
        driver = chrome()
        metrics = {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        driver.get(base + "/")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.ID, "connection").text == "no microphone here"
        )
        width, view = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert view <= 400  # the phone-sized window
        assert width <= view  # nothing wider than the screen: no sideways scrolling
        assert driver.find_element(By.ID, "mic-start").is_displayed()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(lines)
