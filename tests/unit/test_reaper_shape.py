"""The reaper keeps the shape its safety rests on: reap() has one exit, and a parent is let go in exactly one
place (_Injection._release: registers restored while it is stopped, then the detach), whatever happened."""

import ast
import inspect
import textwrap

from ansible.module_utils.zombie_cleaner.cure import ptrace, reaper


def tree(function):
    return ast.parse(textwrap.dedent(inspect.getsource(function)))


def calls(node, name):
    return [call for call in ast.walk(node) if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr == name]


def test_reap_has_a_single_exit():
    returns = [node for node in ast.walk(tree(reaper.reap)) if isinstance(node, ast.Return)]
    assert len(returns) == 1
    assert [node for node in ast.walk(tree(reaper.reap)) if isinstance(node, ast.Raise)] == []


def test_the_parent_is_detached_in_one_place_in_a_finally():
    module = ast.parse(inspect.getsource(reaper))
    detaching = [(function.name, call) for function in ast.walk(module) if isinstance(function, ast.FunctionDef)
                 for call in calls(function, "detach")]
    # The tracer process lets go in _release, whether it restores at once or waits for a frozen parent's thaw.
    assert [name for name, _ in detaching] == ["_release"]
    finals = [node for node in ast.walk(tree(reaper._Injection._release)) if isinstance(node, ast.Try)
              and node.finalbody]
    assert any(calls(statement, "detach") for node in finals for statement in node.finalbody)
    # The tracer process's run ends in _release whatever it raised.
    run = tree(reaper._Injection.run)
    assert any(calls(statement, "_release") for node in ast.walk(run) if isinstance(node, ast.Try)
               for statement in node.finalbody)


def test_nothing_else_in_the_cure_room_detaches_a_tracee():
    for module in ("remediate", "rungs", "procsignal", "runtime_cli", "child"):
        source = inspect.getsource(__import__("ansible.module_utils.zombie_cleaner.cure." + module,
                                              fromlist=[module]))
        assert ".detach(" not in source, module
    assert calls(tree(ptrace.Tracee.__exit__), "detach")      # the context manager's own, unused by the reaper
