"""The lightweight CRM core: schema, store functions, caller lookup, call log.

Store functions take an ``AsyncConnection`` first; the caller owns the transaction
(``async with engine.begin() as conn``). Errors are :mod:`crm_sync.errors`.

* :mod:`crm_sync.phones`     - number normalisation and lookup variants (pure)
* :mod:`crm_sync.lookup`     - who owns a number, ranked and explained
* :mod:`crm_sync.contacts`   - contacts and companies with phones, e-mails, tags, notes
* :mod:`crm_sync.users`      - users, roles, teams, extensions, passwords, API tokens
* :mod:`crm_sync.tasks`      - tasks
* :mod:`crm_sync.activities` - notes and call activities
* :mod:`crm_sync.audit`      - the audit log
* :mod:`crm_sync.csv_io`     - contacts from and to CSV
* :mod:`crm_sync.backup`     - online backup and restore of the SQLite database
"""

__all__: list[str] = []
