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


def test_run_shards_trims_checks_writes_and_resumes(tmp_path):
    """runs.run_shards, the loop of every sharded engine: 5 items in shards of 2 (the last one padded by compute,
    trimmed here); a NaN stops the run naming its items with nothing of that shard written; the rerun computes
    only the shards that are missing and ends with every shard on disk."""
    import numpy as np

    from si_jax.engines import errors

    calls, bad = [], {2}

    def compute(k, positions):
        calls.append(k)
        x = np.zeros(2, np.float32)   # always a full batch of 2
        x[:len(positions)] = positions
        if k in bad:
            x[0] = np.nan
        return {"x": x, "unused": None}

    def write(k, positions, arrays):
        assert set(arrays) == {"x"} and len(arrays["x"]) == len(positions)
        run.write_shard(k, index=positions, x=arrays["x"])

    run, lines = runs.RunDir(tmp_path / "run", {"test": 1}), []
    with pytest.raises(errors.NonFiniteError, match=r"x \(NaN or inf\) for sample 4, not written; likely cause: X"):
        runs.run_shards(run, 5, 2, compute, write, hint="X", barrier_name="t", log=lines.append)
    assert calls == [0, 1, 2] and [run.is_done(k) for k in range(3)] == [True, True, False]
    bad.clear()
    assert runs.run_shards(run, 5, 2, compute, write, hint="X", barrier_name="t", log=lines.append)
    assert calls == [0, 1, 2, 2] and lines == ["resuming: 2 of 3 shards already done"]
    np.testing.assert_array_equal(run.read_all(3)["x"], np.arange(5))
