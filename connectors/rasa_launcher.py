"""The Rasa command with the project's patches applied: how the Rasa server process starts.

`python -m connectors.rasa_launcher run --model ...` is `rasa run --model ...` after
`connectors.rasa_patches.apply()` and `scope_http_api()` (the HTTP API refuses writes unless
RASA_API_WRITES=on; applied even with RASA_PATCHES=off). Patching here, once, before Rasa
builds anything, rather than in a constructor Rasa happens to call, keeps one place that
decides it: the RASA_PATCHES setting and the Rasa version check are read before any of
Rasa's objects exist, and a channel or store built elsewhere (a test, a console) does not
patch Rasa as a side effect.
scripts/stack.py starts `make run`'s and `make shell`'s Rasa server with it; scripts/bench.py
both benchmark variants (scripts/builtin_twilio_rasa.py calls `main()`).
"""

from __future__ import annotations

import sys

from bot.settings import Settings, SettingsError
from connectors import rasa_patches


def apply_patches() -> str:
    """Apply the patches as the settings say; what was done, for the log.

    The HTTP API's scope comes first and always: RASA_PATCHES turns off speed-ups, not security.
    """
    import rasa

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
    rasa_patches.scope_http_api(writes_allowed=settings.rasa_api_writes)
    scope = (
        "Rasa's HTTP API may write (RASA_API_WRITES=on)"
        if settings.rasa_api_writes
        else "Rasa's HTTP API reads only (RASA_API_WRITES=off)"
    )
    if rasa_patches.apply(enabled=settings.rasa_patches):
        speed = f"Rasa patches applied to Rasa {rasa.__version__}: {', '.join(rasa_patches.PATCHED)}"
    elif not settings.rasa_patches:
        speed = "Rasa patches off (RASA_PATCHES=off): Rasa runs as shipped"
    else:
        speed = f"Rasa patches skipped: written for another Rasa than {rasa.__version__}"
    return f"{speed}\n{scope}"


def main() -> None:
    # Rasa configures logging only inside its main: this line goes straight to the process's log.
    print(apply_patches(), file=sys.stderr, flush=True)
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
