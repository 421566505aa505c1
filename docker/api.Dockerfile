# The HTTP service (`cascade serve`): a producer and reader only, so no torch and no GPU.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CASCADE_CONFIG=/etc/cascade/cascade.toml

WORKDIR /opt/cascade
COPY pyproject.toml README.md alembic.ini ./
COPY router ./router
COPY storage ./storage
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[api]"

RUN useradd --create-home --uid 10001 cascade
USER cascade
EXPOSE 8000

# Ready while the database and the broker answer (/readyz names the one that does not).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]

CMD ["cascade", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
