"""The database (sqlmodel): customers, visits, zone events, the offer outbox and feedback.

`Store(url)` with a `sqlite:///…` or `postgresql+psycopg://…` url.  Offers are written
with `enqueue_offers` before any publish; the outbox publisher reads `due_offers`.
"""
