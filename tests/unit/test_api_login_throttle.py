"""LoginThrottle: a sliding window of failures per login name and per address (pure)."""

from __future__ import annotations

from connector.web.api_auth import LoginThrottle

IVAN = [("login", "ivan"), ("addr", "10.0.0.1")]
OLGA = [("login", "olga"), ("addr", "10.0.0.1")]


def test_limit_per_login_then_window_slides() -> None:
    t = LoginThrottle(per_login=3, per_address=100, window=60)
    for i in range(3):
        assert t.retry_after(IVAN, now=float(i)) is None
        t.failed(IVAN, now=float(i))
    assert t.retry_after(IVAN, now=3.0) == 57.0  # the first failure leaves at 60
    assert t.retry_after(OLGA, now=3.0) is None  # another login from the same address
    assert t.retry_after(IVAN, now=60.0) is None
    t.failed(IVAN, now=60.0)
    assert t.retry_after(IVAN, now=60.5) == 0.5  # failures at 1, 2 and 60: wait for 1 to go


def test_address_limit_covers_many_logins() -> None:
    t = LoginThrottle(per_login=100, per_address=4, window=10)
    for i in range(4):
        t.failed([("login", f"user{i}"), ("addr", "10.0.0.9")], now=0.0)
    assert t.retry_after([("login", "someone"), ("addr", "10.0.0.9")], now=1.0) == 9.0
    assert t.retry_after([("login", "someone"), ("addr", "10.0.0.8")], now=1.0) is None


def test_success_clears_the_login_but_not_the_address() -> None:
    t = LoginThrottle(per_login=2, per_address=3, window=60)
    t.failed(IVAN, now=0.0)
    t.failed(IVAN, now=1.0)
    assert t.retry_after(IVAN, now=2.0) is not None
    t.succeeded(IVAN)
    assert t.retry_after([("login", "ivan"), ("addr", "10.0.0.2")], now=2.0) is None
    t.failed(OLGA, now=2.0)
    assert t.retry_after(OLGA, now=3.0) is not None  # the address has 3 failures


def test_memory_is_bounded() -> None:
    t = LoginThrottle(per_login=5, per_address=5, window=60, max_keys=50)
    for i in range(1000):
        t.failed([("login", f"u{i}"), ("addr", f"a{i}")], now=float(i))
    assert len(t._failures) <= 51
