"""Typed keys for values stored on the aiohttp application and requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from connector.app import Runtime

__all__ = ["RUNTIME"]

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
