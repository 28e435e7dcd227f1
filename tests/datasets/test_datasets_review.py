import contextlib
import json
import os
import shutil
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from fk.landmarks import five_from_68 as five_points
from fk_datasets.labels import read_rejects
from fk_datasets.review import ReviewState, landmark_error, make_server
from PIL import Image, ImageDraw, ImageFilter


def _lm68(rng) -> np.ndarray:
    lm = rng.uniform(900, 1500, (68, 2))
    lm[36:42] = [1000, 1000]
    lm[42:48] = [1400, 1000]
    lm[30] = [1200, 1200]
    lm[48], lm[54] = [1050, 1350], [1350, 1350]
    return lm


@pytest.fixture
def lpff_tree(tmp_path, rng):
    """Four faces: good, landmarks off (b), blurry crop (c), no crop (d)."""
    real = tmp_path / "realign"
    for sub in ("debug", "crop/eg3d", "lm_5p_pred", "detections"):
        (real / sub).mkdir(parents=True)
    for i, face in enumerate(["a_01", "b_01", "c_01", "d_02"]):
        lm = _lm68(rng)
        det = five_points(lm) + (60.0 if face == "b_01" else 2.0)
        np.save(real / "lm_5p_pred" / f"{face}.npy", lm)
        np.savetxt(real / "detections" / f"{face}.txt", det)
        panel = Image.new("RGB", (672, 224), (40 + 50 * i, 90, 140))
        draw = ImageDraw.Draw(panel)
        for k in range(3):
            draw.ellipse((224 * k + 50, 40, 224 * k + 174, 190), outline=(255, 255, 255), width=4)
        draw.text((10, 10), face, fill=(255, 255, 0))
        panel.save(real / "debug" / f"{face}.png")
        if face != "d_02":
            crop = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
            if face == "c_01":
                crop = crop.filter(ImageFilter.GaussianBlur(6))
            crop.save(real / "crop" / "eg3d" / f"{face}.png")
    return tmp_path


def test_low_detection_scores_are_flagged_not_dropped(lpff_tree):
    faces = lpff_tree / "lm_facealignment_dlib" / "faces"
    faces.mkdir(parents=True)
    for face, score in (("a_01", 0.208), ("c_01", 1.4)):  # 0.208: a real face in a real LPFF photo
        record = {face: {"box": [0, 0, 9, 9], "score": score, "detector": "dlib"}}
        (faces / f"{face[0]}.json").write_text(json.dumps(record))
    items = {it["face"]: it for it in ReviewState(lpff_tree).items()}
    assert items["a_01"]["flags"] == ["low detection score 0.21: check that it is a face"]
    assert items["a_01"]["decision"] == "accept", "a flag asks for a look; it decides nothing"
    assert not any("score" in f for f in items["c_01"]["flags"])
    assert items["b_01"]["score"] is None


def test_landmark_error_is_in_eye_distances(rng):
    lm = _lm68(rng)
    assert landmark_error(lm, five_points(lm)) == 0.0
    assert landmark_error(lm, five_points(lm) + [0, 40]) == pytest.approx(0.1)  # 40 px / 400 px


def test_flags_and_decisions_over_http(lpff_tree):
    state = ReviewState(lpff_tree)
    flags = {it["face"]: it["flags"] for it in state.items()}
    assert flags["a_01"] == []
    assert flags["b_01"][0].startswith("landmarks off")
    assert flags["c_01"][0].startswith("blurry crop")
    assert flags["d_02"] == ["no EG3D crop"]
    server = make_server(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address
    assert host == "127.0.0.1"
    try:
        base = f"http://127.0.0.1:{port}"
        items = json.loads(urllib.request.urlopen(base + "/api/items").read())
        assert [it["face"] for it in items] == ["a_01", "b_01", "c_01", "d_02"]
        req = urllib.request.Request(base + "/api/decision", data=json.dumps({"face": "b_01", "decision": "reject"})
                                     .encode(), method="POST")
        assert json.loads(urllib.request.urlopen(req).read())["ok"]
        assert urllib.request.urlopen(base + "/img/debug/a_01.png").read()[:4] == b"\x89PNG"
        with pytest.raises(urllib.error.HTTPError):  # only known faces' files are served
            urllib.request.urlopen(base + "/img/debug/..%2F..%2Fsecret.png")
    finally:
        server.shutdown()
        server.server_close()
    assert read_rejects(lpff_tree / "review" / "rejects.json") == {"b_01"}
    assert all((lpff_tree / "realign" / "debug" / f"{f}.png").exists() for f in flags)  # nothing deleted
    assert ReviewState(lpff_tree).items()[1]["decision"] == "reject"  # decisions survive a restart


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    return (browser, driver) if browser and driver else None


@contextlib.contextmanager
def review_in_chromium(root: Path, tmp_path: Path):
    """The review page of ``root`` served on 127.0.0.1 and opened in headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _chromium()
    server = make_server(ReviewState(root))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,900", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        yield driver
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="needs Chromium, chromedriver and selenium")
def test_review_page_in_headless_chromium(lpff_tree, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with review_in_chromium(lpff_tree, tmp_path) as driver:
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        cards = driver.find_elements(By.CSS_SELECTOR, ".card")
        assert [c.get_attribute("data-face") for c in cards] == ["a_01", "b_01", "c_01", "d_02"]
        assert [("flagged" in c.get_attribute("class")) for c in cards] == [False, True, True, True]
        # all debug renders really loaded
        wait.until(lambda d: d.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
        driver.find_element(By.ID, "card-c_01").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-saved") == "c_01:reject")
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.ARROW_RIGHT)  # focus moves from c_01 to d_02
        body.send_keys("x")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-saved") == "d_02:reject")
        assert "rejected" in driver.find_element(By.ID, "card-c_01").get_attribute("class")
        assert "3 flagged, 2 rejected" in driver.find_element(By.ID, "counts").text
        shot = tmp_path / "review.png"
        assert driver.save_screenshot(str(shot))
        if os.environ.get("FK_SCREENSHOT_DIR"):
            Path(os.environ["FK_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(os.environ["FK_SCREENSHOT_DIR"]) / "datasets_review.png")
        img = np.asarray(Image.open(shot).convert("RGB"))
        assert img.shape[0] > 500 and img.std() > 10  # a real page, not a blank screen
    assert read_rejects(lpff_tree / "review" / "rejects.json") == {"c_01", "d_02"}


@pytest.fixture
def lpff_tree_20k(tmp_path):
    """20,000 faces (LPFF has 19,590): one small debug render hard-linked 20k times, no crops."""
    debug = tmp_path / "realign" / "debug"
    debug.mkdir(parents=True)
    Image.new("RGB", (96, 32), (120, 90, 60)).save(tmp_path / "panel.png")
    for i in range(20_000):
        os.link(tmp_path / "panel.png", debug / f"{i:05d}_01.png")
    return tmp_path


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs Chromium, chromedriver and selenium")
def test_review_page_at_20k_faces_holds_one_page_of_images(lpff_tree_20k, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with review_in_chromium(lpff_tree_20k, tmp_path) as driver:
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert "20000 faces, 20000 flagged" in driver.find_element(By.ID, "counts").text
        cards = driver.find_elements(By.CSS_SELECTOR, ".card")
        assert len(cards) == 120
        assert cards[0].get_attribute("data-face") == "00000_01"
        assert driver.execute_script("return document.images.length") == 120  # one page, not 20k
        assert driver.execute_script("return [...document.images].every(i => i.loading === 'lazy')")
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.PAGE_DOWN)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-page") == "2")
        assert driver.find_elements(By.CSS_SELECTOR, ".card")[0].get_attribute("data-face") == "00120_01"
        body.send_keys("x")  # rejects the focused face, the first of page 2
        saved = "00120_01:reject"
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-saved") == saved)
    assert read_rejects(lpff_tree_20k / "review" / "rejects.json") == {"00120_01"}
