"""The loop's int3 SIGTRAP can stay queued behind another stop (issue 14, review finding): the kernel reports an
interrupt, a freeze or a job-control stop before it dequeues signals, so a stop of that kind with the parent right
after our int3 leaves the trap queued, and a detach then kills the parent with it. Such a stop must mark the trap as
pending, so that it is taken before the detach (ptrace.Tracee.take_step_trap, run by _restore).

The kernel's window (between the int3 and the return to user mode) cannot be hit on demand by a real process, so
the stops are handed in here as the kernel reports them; the integration tests cover the trap taken on the
single-step path."""

from ansible.module_utils.zombie_cleaner.cure import ptrace, reaper

PAGE = 0x7F0000001000
VDSO_SYSCALL = 0x7FFF00000100


class StopsAs:
    """A tracee whose next stop is `stop`, with the instruction pointer at `rip`."""

    def __init__(self, stop, rip):
        self.stop, self.after = stop, ptrace.Registers()
        self.after.rip = rip
        self.step_pending = False

    def run_code(self, regs):
        return self.stop, self.after

    def wait_stop(self, deadline):
        return self.stop

    def get_registers(self):
        return self.after


def injection(tracee, page=PAGE):
    made = reaper._Injection.__new__(reaper._Injection)
    made.tracee, made.page, made.address, made.saved = tracee, page, VDSO_SYSCALL, ptrace.Registers()
    made.inject_seconds, made.executed, made.remaining = 0.0, [], [({"pid": 10 + n}, 10 + n) for n in range(5)]
    made.fail_reason = made.skip_reason = None
    made.pass_sig = 0
    return made


INTERRUPT = ptrace.Stop("interrupt", 0, 0, 0)
GROUP_STOP = ptrace.Stop("group", 19, 0, 0)
OUR_TRAP = ptrace.Stop("signal", 5, ptrace.SI_KERNEL, 0)


def test_an_interrupt_right_after_the_loops_int3_leaves_its_trap_to_be_taken():
    for stop in (INTERRUPT, GROUP_STOP):
        tracee = StopsAs(stop, PAGE + reaper.LOOP_TRAP_END)
        made = injection(tracee)
        made._run_loop(list(made.remaining))
        assert tracee.step_pending, stop


def test_the_trap_itself_or_a_stop_before_the_int3_leaves_nothing_pending():
    for stop, rip in ((OUR_TRAP, PAGE + reaper.LOOP_TRAP_END), (INTERRUPT, PAGE + reaper.LOOP_SYSCALL_END)):
        tracee = StopsAs(stop, rip)
        made = injection(tracee)
        made._run_loop(list(made.remaining))
        assert not tracee.step_pending, (stop, rip)


def test_a_thawed_parent_stopped_right_after_the_loops_int3_has_its_trap_taken(monkeypatch):
    """The tracer waiting for a parent frozen while it ran our loop (_await_stop): at the thaw, the stop can come
    right after the int3, with its trap still queued."""
    monkeypatch.setattr(reaper, "freezer_state", lambda proc_root, pid: "FROZEN")
    tracee = StopsAs(INTERRUPT, PAGE + reaper.LOOP_TRAP_END)
    made = injection(tracee)
    made.proc_root, made.pid, made.send = "/proc", 4242, lambda answer: None
    made._answer = lambda: None
    made._await_stop()
    assert tracee.step_pending
    tracee = StopsAs(INTERRUPT, PAGE + 3)                  # stopped mid-loop: no trap of ours queued
    made = injection(tracee)
    made.proc_root, made.pid, made._answer = "/proc", 4242, lambda: None
    made._await_stop()
    assert not tracee.step_pending


def test_a_parent_that_ran_on_while_a_trap_was_taken_never_gets_older_registers():
    """take_step_trap may have let the parent run its own code (the trap flushed by another thread after our read
    of the queue): its registers then are newer than the round's; putting those back, or stepping from them,
    would rewind it."""
    tracee = StopsAs(INTERRUPT, PAGE)
    tracee.ran_own_code, restored = True, []
    tracee.restore = lambda regs: restored.append(regs) or True
    made = injection(tracee)
    made.final, made.final_applied = ptrace.Registers(), False
    made._restore()
    assert restored == [] and made.final_applied
    made.page_error = None
    made._last_unmap()                                   # no munmap step from the round's older registers
    assert made.page == PAGE and made.page_error.startswith("the parent ran on meanwhile")


def test_a_fault_of_the_parents_own_queued_behind_our_stop_is_left_to_it():
    """Its own int3 (or fault) just before our interrupt: the trap waits in its queue; our first step would
    dequeue it and take it for ours (seen once in 3000 interrupts by the reviewer). The round is refused."""
    tracee = StopsAs(INTERRUPT, PAGE)
    made = injection(tracee)
    tracee.queued_signals = lambda: [(5, ptrace.SI_KERNEL, 0)]
    assert "a fault or trap of its own (signal 5)" in made._own_fault_problem()
    tracee.queued_signals = lambda: [(5, -6, 0), (34, -1, 0)]     # tgkill'd SIGTRAP, a queued RT signal: fine
    assert made._own_fault_problem() is None
