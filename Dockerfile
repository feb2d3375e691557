# trengo-processor container image.
# Build: docker build -t trengo-processor:0.1.0 .
# Two stages: the first installs the package and its dependencies into a virtualenv (every
# dependency ships manylinux wheels, so no compiler is needed even there); the final stage is the
# slim base plus that virtualenv, run as an unprivileged numeric user so Kubernetes can verify
# runAsNonRoot. No HEALTHCHECK: Kubernetes probes /healthz and /readyz.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY processor ./processor
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 trengo \
    && useradd --system --uid 10001 --gid trengo --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin trengo
COPY --from=build /opt/venv /opt/venv
# The chart mounts a read-only root filesystem: nothing may write bytecode at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9400
ENTRYPOINT ["trengo-processor", "run", "--config", "/etc/trengo-processor/config.yaml"]
