"""Process-wide guards (app/hardening.py): no input, however nested, crashes a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_deeply_nested_json_at_every_entry_point_is_a_400_not_a_crash() -> None:
    """100,000 levels of nesting after py_ecc raised the recursion limit used to segfault (exit -11)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(ROOT / "tests" / "deep_json_cases.py")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_frame_parsers_refuse_nesting_past_the_depth_guard() -> None:
    """4 KiB of brackets fits an operator's frame and nests past the recursion limit once it is sane."""
    from app.autoscale.service import OperatorFrameError, parse_operator_frame
    from app.chat.service import FrameError, parse_frame
    from app.hardening import keep_recursion_limit_sane

    keep_recursion_limit_sane()
    deep = "[" * 2000 + "]" * 2000
    with pytest.raises(OperatorFrameError) as operator:
        parse_operator_frame(deep)
    with pytest.raises(FrameError) as chat:
        parse_frame(deep, max_frame_bytes=16_384, max_message_chars=100)

    assert operator.value.frame.code == chat.value.code == "bad_frame"
