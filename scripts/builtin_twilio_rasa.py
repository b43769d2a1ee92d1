"""`rasa` for the benchmark's baseline: Rasa's built-in twilio channel, its Twilio calls aimed at
BENCH_TWILIO_API_BASE. Only the host changes; the built-in blocking client and code path stay.
Started like our variant's server (connectors/rasa_launcher.py), with the same Rasa patches, so
the two variants differ only in the channel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twilio.http.http_client import TwilioHttpClient

TWILIO_API = "https://api.twilio.com"
API_BASE = os.environ["BENCH_TWILIO_API_BASE"].rstrip("/")
_request = TwilioHttpClient.request


def _request_to_bench_endpoint(self, method, url, *args, **kwargs):
    if url.startswith(TWILIO_API):
        url = API_BASE + url[len(TWILIO_API) :]
    return _request(self, method, url, *args, **kwargs)


TwilioHttpClient.request = _request_to_bench_endpoint

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from connectors.rasa_launcher import main

    main()
