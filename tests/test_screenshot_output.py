"""`make test` leaves `git status` clean: the browser tests' screenshots go to an ignored folder."""

from __future__ import annotations

import subprocess

from tests.browser.conftest import README_SCREENSHOTS, REPO, screenshot_dir


def git_ignores(path: str) -> bool:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, timeout=30, check=False
    )
    return result.returncode == 0


def test_browser_tests_write_screenshots_only_to_an_ignored_folder() -> None:
    folder = screenshot_dir({})
    assert folder != README_SCREENSHOTS
    assert git_ignores(str((folder / "dashboard.png").relative_to(REPO)))


def test_make_screenshots_refreshes_the_readme_pictures() -> None:
    assert screenshot_dir({"UPDATE_SCREENSHOTS": "1"}) == README_SCREENSHOTS
    assert not git_ignores(str((README_SCREENSHOTS / "dashboard.png").relative_to(REPO)))
    makefile = (REPO / "Makefile").read_text()
    assert "screenshots: install" in makefile and "UPDATE_SCREENSHOTS=1" in makefile
