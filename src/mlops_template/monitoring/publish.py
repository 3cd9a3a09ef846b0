"""Monitoring's CI helpers: fetch a production window, publish the summary as ONE issue.

    python -m mlops_template.monitoring.publish fetch    # make monitor-fetch
    python -m mlops_template.monitoring.publish issue    # make monitor-issue

`fetch` downloads the logs from `MONITOR_LOGS_URL` (any URL `dvc get-url` reads: s3://,
gs://, azure://, https://, a local path) into the service's log directory, and the outcome
files from `MONITOR_OUTCOMES_URL` (optional) into the outcome drop. README, "Monitoring",
gives the path pattern production writes to.

`issue` opens, or edits, the one open issue labelled `model-monitoring` with
`summary.md` (the `gh` CLI, authenticated by GH_TOKEN): every run updates the same issue, so a
schedule never floods the tracker. The title carries the verdict.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mlops_template.core import cli
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.monitoring.monitor import SUMMARY_JSON, SUMMARY_MD

log = logging.getLogger(__name__)
LABEL = "model-monitoring"
LABEL_COLOUR = "5319e7"
MAX_BODY = 60_000  # GitHub refuses issue bodies over 65,536 characters
TITLES = {
    "healthy": "healthy",
    "attention": "needs attention",
    "retrain": "retrain recommended",
}


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise InputError(
            f"{' '.join(argv[:3])} failed: {detail[-1] if detail else proc.returncode}"
        )
    return proc.stdout.strip()


def _gh() -> str:
    found = shutil.which("gh")
    if found is None:
        raise InputError("the GitHub CLI `gh` is not installed (GitHub's runners have it)")
    if not os.environ.get("GH_TOKEN"):
        raise InputError("GH_TOKEN is not set: the workflow passes ${{ github.token }}")
    return found


def issue_body(markdown: str) -> str:
    run = ""
    server, repository, run_id = (
        os.environ.get("GITHUB_SERVER_URL"),
        os.environ.get("GITHUB_REPOSITORY"),
        os.environ.get("GITHUB_RUN_ID"),
    )
    if server and repository and run_id:
        run = (
            f"\n\nThe page for people (`report.html`) is an artifact of "
            f"[this run]({server}/{repository}/actions/runs/{run_id}).\n"
        )
    body = markdown
    if len(body) + len(run) > MAX_BODY:
        body = body[: MAX_BODY - len(run) - 40] + "\n\n_(cut: see the run's artifact)_"
    return (
        "<!-- updated by `make monitor-issue` (monitor.yml): one issue, edited every run -->\n"
        + body
        + run
    )


def publish_issue(reports: Path, title_prefix: str) -> str:
    """Open or edit the one open `model-monitoring` issue; its number."""
    gh = _gh()
    md, summary = reports / SUMMARY_MD, reports / SUMMARY_JSON
    if not md.is_file() or not summary.is_file():
        raise InputError(f"{reports}: no {SUMMARY_MD} / {SUMMARY_JSON}; run `make monitor` first")
    status = json.loads(summary.read_text("utf-8"))["status"]
    title = f"{title_prefix}: {TITLES.get(status, status)}"
    _run([gh, "label", "create", LABEL, "--force", "--color", LABEL_COLOUR,
          "--description", "The deployed model's monitoring (monitor.yml)"])  # fmt: skip
    number = _run([gh, "issue", "list", "--label", LABEL, "--state", "open", "--limit", "1",
                   "--json", "number", "--jq", ".[0].number // empty"])  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False, encoding="utf-8") as fh:
        fh.write(issue_body(md.read_text("utf-8")))
        body = fh.name
    try:
        if number:
            _run([gh, "issue", "edit", number, "--title", title, "--body-file", body])
            log.info("updated issue #%s: %s", number, title)
        else:
            url = _run([gh, "issue", "create", "--label", LABEL, "--title", title,
                        "--body-file", body])  # fmt: skip
            number = url.rstrip("/").rsplit("/", 1)[-1]
            log.info("opened issue #%s: %s", number, title)
    finally:
        Path(body).unlink(missing_ok=True)
    return number


def fetch(logs: Path, outcomes: Path) -> None:
    """`dvc get-url` the window (MONITOR_LOGS_URL) and the outcomes (MONITOR_OUTCOMES_URL)."""
    url = os.environ.get("MONITOR_LOGS_URL")
    if not url:
        raise InputError(
            "MONITOR_LOGS_URL is not set: the repository variable naming where production "
            "writes its logs, e.g. s3://<bucket>/<project>/monitoring/<yyyy-mm-dd>/ "
            "(README, 'Monitoring')"
        )
    for source, target in ((url, logs), (os.environ.get("MONITOR_OUTCOMES_URL"), outcomes)):
        if not source:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "dvc", "get-url", "--force", source, str(target)])
        log.info("fetched %s into %s", source, target)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("fetch", "issue"))


def _main(args: argparse.Namespace, params: Params) -> None:
    if args.what == "fetch":
        fetch(params.service.log_path(), Path(params.monitor.outcomes))
    else:
        publish_issue(Path(params.monitor.reports), f"{params.project.name} model monitoring")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("publish", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
