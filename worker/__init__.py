"""The worker entrypoint: Celery processes that run Ferry's jobs (`ferry worker`)."""
