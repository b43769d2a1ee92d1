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
