# One cascade tier per container: CASCADE_TIER picks the tier from the mounted config.
# The base image brings a CUDA build of torch that the `models` extra accepts (torch>=2.9;
# transformers 5 refuses torch below 2.6); tests/unit/test_deployment.py checks the two agree.
FROM pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    CASCADE_CONFIG=/etc/cascade/cascade.toml \
    CASCADE_HEARTBEAT_FILE=/tmp/cascade-heartbeat

WORKDIR /opt/cascade
COPY pyproject.toml README.md alembic.ini ./
COPY router ./router
COPY storage ./storage
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[models]"

# Workers never run as root.
RUN useradd --create-home --uid 10001 cascade
USER cascade

# Healthy while the worker's heartbeat is fresh and its database and broker answer.
HEALTHCHECK --interval=30s --timeout=20s --start-period=300s --retries=3 \
    CMD ["cascade", "health", "--heartbeat-max-age", "90"]

# One process per GPU: the solo pool never forks after CUDA is initialised.
CMD ["sh", "-c", "exec cascade worker --tier \"$CASCADE_TIER\" --pool solo"]
