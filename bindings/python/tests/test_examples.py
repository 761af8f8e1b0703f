"""The example app and the README's Python quickstart, run for real against a collector."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from sightline.testing import MicroCollector


def test_the_example_app_reconciles_exactly_at_the_collector(
    default_collector: MicroCollector, tmp_path: Path
) -> None:
    app = REPO / "examples" / "python" / "app.py"
    done = subprocess.run(
        [sys.executable, str(app), default_collector.url, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["delivered"] == report["expected"] == 8
    rows = default_collector.good()
    assert len(rows) == 8 and default_collector.bad() == []
    accounting = default_collector.sessions()[report["session"]]
    assert (accounting["issued"], accounting["delivered"], accounting["missing"]) == (8, 8, 0)


def quickstart() -> str:
    readme = (REPO / "README.md").read_text()
    found = re.search(r"<!-- quickstart:python -->\s*```python\n(.*?)```", readme, re.S)
    assert found, "README.md has a Python quickstart"
    return found.group(1)


def test_the_readme_quickstart_runs_and_its_impression_arrives(
    default_collector: MicroCollector, tmp_path: Path
) -> None:
    code = quickstart().replace("https://collector.example.com", default_collector.url)
    code = code.replace('"/var/lib/myapp/sightline"', repr(str(tmp_path)))
    code = code.replace("your-collector-key", "key-1")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert [r["item_id"] for r in default_collector.good()] == ["title:81234567"]
