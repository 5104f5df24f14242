"""solo_d2.utils.comm.StepVote: the hooks that agree across processes every step (bad files,
preemption and failed-write flags) share one all-reduce per iteration."""
from types import SimpleNamespace

from solo_d2.data.bad_files import BadFilesHook
from solo_d2.launch.agreed_stop import AgreedStopHook
from solo_d2.utils import comm
from solo_d2.utils.comm import StepVote


def _counting_sums(monkeypatch):
    calls = []

    def fake(*counts):
        calls.append(counts)
        return [2 * c for c in counts]  # as if a second process had the same counts

    monkeypatch.setattr(comm, "sum_over_processes", fake)
    return calls


def test_one_all_reduce_per_iteration_whoever_asks_first(monkeypatch):
    calls = _counting_sums(monkeypatch)
    asked = []
    vote = StepVote()
    vote.provide("b", lambda: asked.append("b") or 3)
    vote.provide("a", lambda: asked.append("a") or 1)
    assert vote.totals(7) == {"a": 2, "b": 6}
    assert vote.totals(7) == {"a": 2, "b": 6}  # the second hook of the step reads
    assert calls == [(1, 3)] and sorted(asked) == ["a", "b"]
    vote.totals(8)
    assert len(calls) == 2


class _Loader:
    def __init__(self):
        self.pending = [("a.jpg", "unreadable")]

    def take(self):
        out, self.pending = self.pending, []
        return out


def test_bad_files_and_agreed_stop_hooks_share_the_step_vote(monkeypatch):
    calls = _counting_sums(monkeypatch)
    vote = StepVote()
    storage = SimpleNamespace(put_scalar=lambda *a, **k: None)
    trainer = SimpleNamespace(iter=0, max_iter=10, storage=storage)
    bad = BadFilesHook(_Loader(), None, vote=vote)
    stop = AgreedStopHook(SimpleNamespace(write_error=None), [], vote=vote)
    bad.trainer = stop.trainer = trainer
    bad.after_step()
    stop.after_step()
    # one all-reduce for both: [bad files, signalled, write_failed]
    assert calls == [(1, 0, 0)]
    assert bad.skipped == 1 and list(bad.bad_files) == ["a.jpg"]
