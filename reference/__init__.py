"""The reference CRM/ERP server: a development tool speaking docs/crm-erp-api.yaml, outside the product.

`make crm-server` runs it (`python -m reference`); tests start it in-process over their own store.
It depends on the assistant's public code (records, the wire format, the SQL CRM/ERP's functions);
nothing under bot/, actions/ or connectors/ imports it.

- reference/tables.py: its own `idempotency_keys` table (created by the server in its own
  database, not by the assistant's migrations) and its readers of CRM/ERP rows;
- reference/operations.py: one function per operation of the contract, and the routes;
- reference/server.py: the threaded HTTP server, credentials, test-only faults;
- reference/__main__.py: the command line.
"""
