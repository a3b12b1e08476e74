"""The dashboard in a real browser (Debian's Chromium driven by Playwright), on a served API.

Screenshots of every page go to tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engine import dlq
from service.tokens import create_token
from tests.helpers import scalar, served_api
from tests.integration.test_dlq_ops import dead_record

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def site(settings: Settings, engine: AsyncEngine) -> AsyncIterator[str]:
    """The API served on a free port, with orphaned claims and a dead letter to act on."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO members (id, name) VALUES ('r1', 'Grace Hopper'), ('r2', 'Alan Turing')"
            )
        )
        await conn.execute(
            sa.text("INSERT INTO tasks (id, title) VALUES ('t1', 'Translate the guide')")
        )
        for cid, reviewer, days in (("c-101", "r1", 12), ("c-102", "r2", 9), ("c-103", "r1", 2)):
            at = now - timedelta(days=days)
            await conn.execute(
                sa.text(
                    "INSERT INTO claims (id, task_id, member_id, status, reviewer_id, submitted_at, "
                    "review_started_at, updated_at) VALUES (:id, 't1', 'm1', 'under_review', :r, :at, "
                    ":at, :at)"
                ),
                {"id": cid, "r": reviewer, "at": at},
            )
    await dlq.index(engine, dead_record(settings, 7, "exhausted"))
    async with served_api(settings, engine) as base:
        yield base


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        await b.close()


async def login(browser: Browser, base: str, token: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{base}/dashboard")
    await expect(page).to_have_url(f"{base}/dashboard/login")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/dashboard")
    return page


async def test_admin_releases_orphaned_claims_and_replays_a_dead_letter(
    site: str, browser: Browser, engine: AsyncEngine
) -> None:
    admin = await create_token(engine, "alice", "admin")
    page = await login(browser, site, admin)

    badge = page.locator("[data-badge='orphaned claims']")
    await expect(badge.locator(".n")).to_have_text("2")
    await page.screenshot(path=ARTIFACTS / "overview.png", full_page=True)

    await badge.get_by_role("link", name="Review and fix").click()
    preview = page.locator("#preview")
    await expect(preview).to_contain_text("c-101")
    await expect(preview).to_contain_text("Grace Hopper")
    await expect(preview).to_contain_text("Alan Turing")
    await expect(preview).not_to_contain_text("c-103")  # two days under review: not orphaned
    await expect(page.locator("#preview-summary")).to_contain_text("2")
    await page.screenshot(path=ARTIFACTS / "confirm-release.png", full_page=True)

    await page.click("#confirm")
    await expect(page.locator(".flash.ok")).to_contain_text("claims.release-orphaned: 2 changed")
    await expect(page.locator("[data-badge='orphaned claims'] .n")).to_have_text("0")
    await page.screenshot(path=ARTIFACTS / "released.png", full_page=True)
    assert await scalar(engine, "SELECT count(*) FROM claims WHERE status = 'submitted'") == 2
    assert await scalar(engine, "SELECT actor FROM job_runs") == "token:alice"

    await page.locator("tr[data-job='claims.release-orphaned'] a").first.click()
    history = page.locator("#history")
    await expect(history).to_contain_text("succeeded")
    await expect(history).to_contain_text("token:alice")
    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator(".flash.ok")).to_contain_text("claims.release-orphaned paused")
    paused = page.locator("tr[data-job='claims.release-orphaned'] .status.skipped")
    await expect(paused).to_have_text("paused")
    await page.locator("tr[data-job='claims.release-orphaned'] a").first.click()
    await page.screenshot(path=ARTIFACTS / "job-history.png", full_page=True)
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator(".flash.ok")).to_contain_text("resumed")
    await expect(paused).to_have_count(0)

    await page.get_by_role("link", name="Dead letters").click()
    row = page.locator("tr[data-id]")
    await expect(row).to_have_count(1)
    await row.locator("summary").click()  # the decoded payload and the error
    await expect(row.locator("pre").first).to_contain_text("claim.submitted")
    await page.screenshot(path=ARTIFACTS / "dead-letters.png", full_page=True)
    await row.get_by_role("button", name="Replay").click()
    await expect(page.locator(".flash.ok")).to_contain_text("Replayed 1 dead letter")
    await expect(page.locator("tr[data-id]")).to_have_count(0)  # no longer pending
    assert (
        await scalar(engine, "SELECT replay_count FROM dead_letters WHERE status = 'replayed'") == 1
    )
    assert await scalar(engine, "SELECT count(*) FROM outbox WHERE value IS NOT NULL") == 1


async def test_a_viewer_sees_everything_and_can_change_nothing(
    site: str, browser: Browser, engine: AsyncEngine
) -> None:
    viewer = await create_token(engine, "victor", "viewer")
    page = await login(browser, site, viewer)
    await expect(page.locator("[data-badge='orphaned claims'] .n")).to_have_text("2")
    await expect(page.locator("#jobs")).to_contain_text("claims.release-orphaned")
    pages = {
        "overview-viewer": f"{site}/dashboard",
        "confirm-viewer": f"{site}/dashboard/jobs/claims.release-orphaned/confirm",
        "dead-letters-viewer": f"{site}/dashboard/dlq",
    }
    for name, url in pages.items():
        await page.goto(url)
        actions = page.locator("main button:not(.filter), main input[type=checkbox]")
        count = await actions.count()
        for i in range(count):
            button = actions.nth(i)
            if (await button.inner_text()).strip() == "Filter":
                continue
            assert await button.is_disabled(), f"{name}: {await button.inner_text()} is enabled"
        await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    await expect(page.locator("tr[data-id]")).to_have_count(1)  # it sees the dead letter

    # and a crafted POST (with a valid CSRF token from its own page) is refused
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    response = await page.request.post(
        f"{site}/dashboard/jobs/claims.release-orphaned/run", form={"csrf": csrf or ""}
    )
    assert response.status == 403
    assert await scalar(engine, "SELECT count(*) FROM claims WHERE status = 'under_review'") == 3
