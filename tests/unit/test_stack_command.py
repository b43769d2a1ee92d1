"""The Rasa server's command line as scripts/stack.py writes it, read by Rasa's own parser."""

import importlib.util
from pathlib import Path

import pytest
from rasa.__main__ import create_argument_parser

ROOT = Path(__file__).resolve().parent.parent.parent
spec = importlib.util.spec_from_file_location("stack", ROOT / "scripts" / "stack.py")
stack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stack)


@pytest.mark.parametrize("token", ["-02KbOrKhL7PxecxBvTrHSQl5y1qo6BL", "plain_token", "--double"])
def test_rasa_reads_the_token_whatever_it_starts_with(token):
    arguments = stack.rasa_run_arguments(Path("models/m.tar.gz"), 5005, token)
    parsed = create_argument_parser().parse_args(arguments)
    assert (parsed.auth_token, parsed.port, parsed.enable_api) == (token, 5005, True)


def test_a_child_that_dies_is_restarted_after_a_delay_that_grows_while_it_keeps_dying(monkeypatch, capsys):
    import subprocess
    import sys

    monkeypatch.setattr(stack, "start", lambda command, settings: subprocess.Popen(command))
    child = stack.Supervised("Rasa server", [sys.executable, "-c", "raise SystemExit(3)"], settings=None)
    first = child.process
    first.wait()
    child.watch(now=child.started + 1)  # noticed: restart in 1 s
    assert child.restart_at == child.started + 2 and child.process is first
    child.watch(now=child.started + 2)
    assert child.process is not first and child.restart_at is None
    child.process.wait()
    child.watch(now=child.started + 1)  # died again at once: 2 s this time
    assert child.restart_at == child.started + 3
    said = capsys.readouterr().out
    assert "Rasa server exited with code 3; restarting it in 1 s." in said
    assert "Rasa server restarted" in said and "restarting it in 2 s." in said
