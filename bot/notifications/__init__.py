"""Notifications from the business's events: the CRM/ERP says what happened, designer rules decide
what is sent, when, and to whom (docs/notifications.md)."""
