# One image for the four Reintegra services, the provider sandbox and the `reintegra` CLI;
# docker-compose.yml picks the process with `command:`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY pyproject.toml .
COPY shared shared
COPY infra infra
COPY services services
RUN pip install --no-deps . && rm -rf build

RUN useradd --system --uid 10001 --create-home --home-dir /home/reintegra reintegra \
    && mkdir -p /var/lib/reintegra \
    && chown reintegra:reintegra /var/lib/reintegra
USER reintegra

# SMS outbox (file gateway) and, when no OTLP exporter is configured, trace files.
ENV REINTEGRA_STATE_DIR=/var/lib/reintegra

CMD ["reintegra", "--help"]
