"""Where routing and storage meet: the Celery app, tier tasks, model backends, the client API and the CLI."""
