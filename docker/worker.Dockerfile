# One cascade tier per container: CASCADE_TIER picks the tier from the mounted config.
# The base image brings a CUDA build of torch; the project installs on top of it.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    CASCADE_CONFIG=/etc/cascade/cascade.toml

WORKDIR /opt/cascade
COPY pyproject.toml README.md alembic.ini ./
COPY router ./router
COPY storage ./storage
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[models]"

# One process per GPU: the solo pool never forks after CUDA is initialised.
CMD ["sh", "-c", "exec cascade worker --tier \"$CASCADE_TIER\" --pool solo"]
