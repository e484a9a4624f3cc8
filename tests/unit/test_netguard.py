import socket

import netguard
import pytest


def test_loopback_is_allowed_and_anything_else_is_blocked():
    assert netguard.is_loopback("127.0.0.1") and netguard.is_loopback("::1") and netguard.is_loopback("localhost")
    assert netguard.is_loopback("::ffff:127.0.0.1")
    assert not netguard.is_loopback("10.0.0.1") and not netguard.is_loopback("example.com")


def test_guard_blocks_and_records_a_non_loopback_connection():
    before = len(netguard.violations)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    assert netguard.violations[before:] == ["connect 192.0.2.1:443"]
    del netguard.violations[before:]  # this test meant to trip the guard
