"""Progress bars (:mod:`atb.progress`): one bar per step of the study, none from nested loops or worker processes."""

import importlib

import pytest

from atb import progress


@pytest.fixture
def fresh():
    """The module with no bar open and not silenced (a silenced test process would hide every later bar)."""
    module = importlib.reload(progress)
    yield module
    importlib.reload(progress)


def test_a_bar_inside_an_open_bar_stays_silent_and_the_next_step_draws_again(fresh):
    with fresh.bar(total=3, desc="outer") as outer:
        assert not outer.disable and not fresh.is_drawing()
        for _ in fresh.bar(range(4), desc="inner"):  # e.g. the fine-tunings of a rerank
            pass
        inner = fresh.bar(total=2, desc="inner, closed by hand")
        assert inner.disable
        inner.close()
    assert fresh.is_drawing()
    after = fresh.bar(total=1, desc="next step")
    assert not after.disable
    after.close()
    assert fresh.is_drawing()


def test_a_disabled_bar_leaves_nested_bars_alone(fresh):
    with fresh.bar(total=1, desc="asked off", disable=True) as off:
        assert off.disable and fresh.is_drawing()
        with fresh.bar(total=1, desc="a real step") as on:
            assert not on.disable


def test_a_silenced_worker_draws_no_bar_not_even_the_libraries(fresh, monkeypatch):
    import datasets
    from transformers.utils import logging as hf_logging

    monkeypatch.setattr(datasets, "disable_progress_bars", lambda: calls.append("datasets"))
    monkeypatch.setattr(hf_logging, "disable_progress_bar", lambda: calls.append("transformers"))
    calls: list[str] = []
    fresh.silence_this_process()
    assert calls == ["datasets", "transformers"]
    with fresh.bar(total=1, desc="in a worker") as b:
        assert b.disable


def test_library_bars_are_off_inside_and_restored_as_they_were(fresh):
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as hf_logging

    state = lambda: (ds_logging.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled())
    before = state()
    with fresh.libraries_quiet():
        assert state() == (False, False)
    assert state() == before
