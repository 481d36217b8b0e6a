"""The instruction-count benchmark's arithmetic: reading cachegrind's totals, per request."""

import pytest

from tests.benchmarks.bench_instructions import LARGE, SMALL, instructions, per_request

# The head and tail of a real cachegrind output file (--cache-sim=yes: nine events).
WITH_CACHE_SIM = """\
desc: I1 cache:         32768 B, 64 B, 8-way associative
cmd: python -m tests.benchmarks.bench_instructions ASGI  200
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
fl=./csu/../csu/libc-start.c
fn=__libc_start_main@@GLIBC_2.34
128 2 1 1 2 0 0 0 0 0
summary: 2727301557 40491820 24370 823659604 27552781 147669 416289923 4271911 680145
"""

WITHOUT_CACHE_SIM = """\
cmd: python -m tests.benchmarks.bench_instructions WSGI  600
events: Ir
fl=???
fn=0x0000000000001100
1 12
summary: 1812345678
"""


def test_the_total_is_read_from_the_summary_under_the_ir_column():
    assert instructions(WITH_CACHE_SIM) == 2727301557
    assert instructions(WITHOUT_CACHE_SIM) == 1812345678


@pytest.mark.parametrize(
    "text",
    ["", "events: Ir\n", "events: I1mr D1mr\nsummary: 5 6\n", "Traceback (most recent call last):"],
)
def test_text_without_an_instruction_total_is_refused(text):
    with pytest.raises(ValueError, match="not a cachegrind output file"):
        instructions(text)


def test_per_request_is_the_difference_of_the_two_runs_over_their_request_difference():
    # Start-up and warm-up are in both runs and cancel out.
    startup, each = 1_500_000_000, 20_000
    small = startup + SMALL * each
    large = startup + LARGE * each
    assert per_request(small, large) == each
