"""Pure routing logic: tiers as data, confidence signals, the escalation policy and cost accounting.

Nothing here imports Celery, SQLAlchemy or torch, so it is tested without services and reused by
offline replay and evaluation code.
"""
