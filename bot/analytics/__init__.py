"""Measuring the self-service: conversation events turned into sessions, and the KPIs over them."""
