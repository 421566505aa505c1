"""The HTTP service (`cascade serve`): OpenAI-compatible chat completions, files and batches, job
endpoints, keys and budgets, webhooks, health and Prometheus metrics. A producer and reader only: it
never loads a model."""
