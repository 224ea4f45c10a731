"""Timing conv candidates (si_jax.stylegan2.conv_timing): rounds go on while the two fastest are close, short calls
are timed back to back, the order alternates, and the share of the CPUs other processes used is measured. No test
here times anything: the samples and readings are faked."""
import jax
import jax.numpy as jnp
import pytest

from si_jax.stylegan2 import conv_timing


def test_timing_goes_on_while_the_two_fastest_are_close():
    """`settled`: candidates within CLOSE of each other are timed for more rounds (up to MAX_REPEATS); a clear
    winner stops after REPEATS rounds, a far one (EARLY_EXIT) after 2."""
    close, clear, far = [1.0, 1.0 + conv_timing.CLOSE / 2, 3.0], [1.0, 1.0 + 2 * conv_timing.CLOSE], [1.0, 2.0]
    assert not conv_timing.settled(close, conv_timing.REPEATS)
    assert not conv_timing.settled(close, conv_timing.MAX_REPEATS - 1)
    assert conv_timing.settled(close, conv_timing.MAX_REPEATS)
    assert not conv_timing.settled(clear, conv_timing.REPEATS - 1) and conv_timing.settled(clear, conv_timing.REPEATS)
    assert not conv_timing.settled(far, 1) and conv_timing.settled(far, 2)
    assert not conv_timing.settled(far, 2, early_exit=None)   # the benches' re-timing: every round
    assert conv_timing.settled([1.0], conv_timing.REPEATS) and not conv_timing.settled([1.0], conv_timing.REPEATS - 1)


def test_short_calls_are_timed_back_to_back():
    """A sample lasts about SAMPLE_S: short calls are timed many at once (at most MAX_CALLS), long ones alone."""
    assert conv_timing.calls_per_sample(1.0) == 1
    assert conv_timing.calls_per_sample(conv_timing.SAMPLE_S / 8) == 8
    assert conv_timing.calls_per_sample(1e-9) == conv_timing.MAX_CALLS


@pytest.mark.parametrize("spread, rounds", [(conv_timing.CLOSE / 2, conv_timing.MAX_REPEATS), (1.0, 2)])
def test_time_candidates_warms_up_then_times_interleaved_rounds_in_alternating_order(monkeypatch, spread, rounds):
    """Each candidate is called twice untimed-for-the-result, then the rounds alternate the order; close candidates
    get MAX_REPEATS rounds, far ones stop early; the result is each one's minimum sample."""
    samples = []

    def fake_sample(call, args, n):
        samples.append((call.name, n))
        return {"a": 1e-3, "b": 1e-3 * (1 + spread)}[call.name] * (2 if len(samples) <= 4 else 1)

    class Named:   # stands for a compiled program: the fake sampler reads its name
        def __init__(self, name):
            self.name = name

    monkeypatch.setattr(conv_timing, "_program", lambda fn, argnums, specs, options=None: Named(fn))
    monkeypatch.setattr(conv_timing, "_sample", fake_sample)
    times = conv_timing.time_candidates({"a": "a", "b": "b"}, [jax.ShapeDtypeStruct((1, 4, 4, 8), jnp.float32)], "fwd")
    assert times == {"a": 1e-3, "b": 1e-3 * (1 + spread)}
    assert samples[:4] == [("a", 1), ("b", 1), ("a", 1), ("b", 1)]   # two warm-up calls each
    n = conv_timing.calls_per_sample(2e-3)
    timed = samples[4:]
    assert len(timed) == 2 * rounds and {k for _, k in timed} == {n}
    assert [name for name, _ in timed[:4]] == ["a", "b", "b", "a"]   # the order reversed every other round


def test_others_share_is_the_busy_cpu_time_not_this_process(monkeypatch):
    """conv_timing.Others: all CPUs' busy time less this process's, over wall time x CPUs; 0 without /proc/stat."""
    readings = iter([(100.0, 10.0, 5.0), (101.5, 10.5, 6.0)])   # (busy CPU-s, own CPU-s, wall s)
    monkeypatch.setattr(conv_timing, "_cpu_now", lambda: next(readings))
    monkeypatch.setattr(conv_timing.os, "cpu_count", lambda: 2)
    with conv_timing.Others() as others:
        pass
    assert others.share == pytest.approx(0.5)   # 1.0 CPU-s of others' work over 2 CPUs x 1 s
    monkeypatch.setattr(conv_timing, "_cpu_now", lambda: None)
    with conv_timing.Others() as others:
        pass
    assert others.share == 0.0
    assert conv_timing._cpu_now() is None or len(conv_timing._cpu_now()) == 3
