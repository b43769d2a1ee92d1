"""Rasa-side plumbing: input/output channels and the stores Rasa keeps conversations in."""
