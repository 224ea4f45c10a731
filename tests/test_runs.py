"""runs.ShardWriter: shard files written on a background thread while the next shard computes (issue 13, item 6)."""
import threading

import pytest

from si_jax.engines import runs


def test_writer_runs_beside_the_caller_in_submission_order():
    started, release, order = threading.Event(), threading.Event(), []

    def slow(k):
        started.set()
        assert release.wait(10), "the caller never got control back: submit did not return before the write ended"
        order.append(k)

    with runs.ShardWriter() as writer:
        writer.submit(slow, 0)
        assert started.wait(10)
        release.set()   # only reachable while shard 0 is still being written
        writer.submit(order.append, 1)   # waits for shard 0 first
    assert order == [0, 1]


def test_failed_write_stops_the_run_at_the_next_shard():
    def broken(k):
        raise OSError(f"disk full writing shard {k}")

    writer = runs.ShardWriter()
    writer.submit(broken, 0)
    with pytest.raises(OSError, match="shard 0"):
        writer.submit(print, 1)
    writer.__exit__(None, None, None)


def test_leaving_waits_for_the_pending_write_and_the_loops_error_wins():
    done = []

    def write(k):
        threading.Event().wait(0.2)
        done.append(k)

    with pytest.raises(ValueError, match="shard 1 not finite"):
        with runs.ShardWriter() as writer:
            writer.submit(write, 0)
            raise ValueError("shard 1 not finite")
    assert done == [0], "the pending shard was abandoned half-written"

    with pytest.raises(ValueError, match="not finite"):   # a failing last write does not mask the loop's error
        with runs.ShardWriter() as writer:
            writer.submit(lambda: 1 / 0)
            raise ValueError("not finite")
    with pytest.raises(ZeroDivisionError):   # ...and surfaces when the loop ended normally
        with runs.ShardWriter() as writer:
            writer.submit(lambda: 1 / 0)
