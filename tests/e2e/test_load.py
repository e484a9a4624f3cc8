"""Concurrent people through the real server and chromium with 10% injected faults (a reduced form of
`python -m bench.load`): no turn lost, no cross-user leak, every failure explained on the page."""
from __future__ import annotations

import pytest

from bench.load import run_load

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_concurrent_conversations_with_faults_lose_nothing_and_leak_nothing(secrets_audit):
    report = run_load(users=6, turns=3)
    secrets_audit.folders.append(report.data_dir)
    secrets_audit.secrets |= report.secrets
    print("\n".join(report.lines()))
    assert report.attempted == 18
    assert report.completed + report.failed_with_message == 18
    assert report.lost == 0 and report.stored_turns == 18
    assert report.leaks == [] and report.sign_in_failures == [] and report.page_errors == []
