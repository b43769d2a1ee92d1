"""What each customer agreed to receive: per topic and per channel, with an append-only log."""
