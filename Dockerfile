# syntax=docker/dockerfile:1
# energy_pipeline in one image: the collector (default command), the Dagster webserver and the
# Dagster daemon (compose.yaml picks the command per service). Build: docker build -t energy-pipeline .

# --- build: a venv with the product and its dependencies, compiled wheels included ----------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY energy_pipeline ./energy_pipeline
RUN /opt/venv/bin/pip install '.[postgres]'

# --- run: the venv, a non-root user, the data volume --------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin energy \
    && usermod --append --groups dialout energy \
    && mkdir -p /data /opt/dagster /config \
    && chown energy:energy /data /opt/dagster
COPY --from=build /opt/venv /opt/venv
COPY --chown=energy:energy deploy/dagster/dagster.postgres.yaml /opt/dagster/dagster.yaml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENERGY_PIPELINE_CONFIG=/config/energy-pipeline.yaml \
    DAGSTER_HOME=/opt/dagster \
    DAGSTER_LOCAL_DIR=/data/dagster
USER energy
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080 3000
# Asks the running collector through its status file; never polls a device.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["energy-pipeline", "status", "--check"]
ENTRYPOINT ["energy-pipeline"]
CMD ["collect"]
