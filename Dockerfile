# trengo-processor container image.
# Build: docker build -t trengo-processor:0.1.0 .
# Two stages: the first installs the package and its dependencies into a virtualenv (every
# dependency ships manylinux wheels, so no compiler is needed even there); the final stage is the
# slim base plus that virtualenv, run as an unprivileged numeric user so Kubernetes can verify
# runAsNonRoot. No HEALTHCHECK: Kubernetes probes /healthz and /readyz.

#
# The base is pinned by digest (the multi-platform index of the tag), so a rebuild gets the same
# bytes and a moved tag cannot slip anything in. To refresh it (monthly, or on a Python or Debian
# advisory), on a machine with registry access:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # or: crane digest ...
# then put the newest 3.11.x tag and the "Digest:" line here, rebuild and run the tests. The
# digest below is the one published for python:3.11.13-slim-bookworm.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# No pip or setuptools in the virtualenv the image ships: the base's pip installs into it.
RUN python -m venv --without-pip /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY processor ./processor
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir .

FROM ${PYTHON_IMAGE}
# The processor never installs anything at run time: the base's pip, setuptools and wheel go.
RUN python -m pip uninstall --yes --no-cache-dir pip setuptools wheel \
    && groupadd --system --gid 10001 trengo \
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
