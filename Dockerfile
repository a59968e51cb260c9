# syntax=docker/dockerfile:1
# One image; the service is the command: `serve` (API + reviewer UI), `stream-worker`,
# `worker --queues cases,hotline` (Celery), `relay`, `db upgrade`, `audit verify`.
# Runtime dependencies only (onnxruntime, no torch). The training worker is the same Dockerfile built
# with EXTRAS=train (see docker-compose.yml, service `trainer`).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# train extras: CPU torch wheels unless a CUDA index is given
ARG EXTRAS=""
ARG PIP_EXTRA_INDEX_URL="https://download.pytorch.org/whl/cpu"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY urbaneye ./urbaneye
COPY vision ./vision
COPY streams ./streams
COPY api ./api
COPY models ./models
COPY datasets ./datasets
COPY app ./app
COPY tools ./tools
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip wheel \
 && if [ -n "$EXTRAS" ]; then \
      PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL" /opt/venv/bin/pip install ".[$EXTRAS]"; \
    else \
      /opt/venv/bin/pip install .; \
    fi

FROM python:3.11-slim
# ffmpeg: RTSP/HLS/file sources; CJK fonts: Chinese text on evidence images; tini: signal forwarding
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-noto-cjk fonts-wqy-microhei tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home urbaneye
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    URBANEYE_DATA_DIR=/data \
    URBANEYE_HOST=0.0.0.0
USER urbaneye
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000 9108
ENTRYPOINT ["tini", "--", "urbaneye"]
CMD ["serve"]
