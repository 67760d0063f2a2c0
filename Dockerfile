# The Quayside image: every Quayside and Prefect process of the production stack
# (infra/compose/docker-compose.yml) runs from it. BASE_IMAGE is any Debian bookworm image:
# debian:bookworm-slim where images can be pulled, or one made locally with
# debootstrap --variant=minbase bookworm DIR && tar -C DIR -c . | docker import - NAME
# (tests/hosts/test_compose_stack.py). Python is Debian's 3.11; the dependencies are exactly
# uv.lock's (uv sync --frozen, no dev group).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG UV_VERSION=0.13.9
# PEM certificates (base64) of a TLS-intercepting proxy between the build and PyPI, added to
# the system's trust store; pip, uv and Quayside then use that store (SSL_CERT_FILE, PIP_CERT)
ARG EXTRA_CA_CERTS_B64=""
ENV DEBIAN_FRONTEND=noninteractive \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/quayside \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/quayside/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# git: the deploy's source mirrors; openssh-client and rsync: the hosts
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates git openssh-client rsync \
    && rm -rf /var/lib/apt/lists/*
RUN if [ -n "$EXTRA_CA_CERTS_B64" ]; then \
        echo "$EXTRA_CA_CERTS_B64" | base64 -d > /usr/local/share/ca-certificates/extra.crt \
        && update-ca-certificates; \
    fi
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /app
# the dependencies first (a layer kept while only Quayside's code changes)
COPY pyproject.toml uv.lock README.md ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project --python /usr/bin/python3
COPY quayside ./quayside
COPY infra/compose/entrypoint.sh ./infra/compose/entrypoint.sh
RUN /opt/uv/bin/uv sync --frozen --no-dev --python /usr/bin/python3

RUN useradd --system --create-home --home-dir /var/lib/quayside --uid 10001 quayside \
    && install -d -o quayside -g quayside -m 0700 /var/lib/quayside-artifacts /etc/quayside
USER quayside
ENV QUAYSIDE_HOME=/var/lib/quayside \
    QUAYSIDE_PROJECT_DIR=/app \
    QUAYSIDE_INVENTORY=/etc/quayside/quayside.yaml \
    PREFECT_HOME=/var/lib/quayside/prefect

ENTRYPOINT ["/app/infra/compose/entrypoint.sh"]
CMD ["python", "-m", "quayside.cli.main", "--help"]
