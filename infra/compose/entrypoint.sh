#!/bin/sh
# The entrypoint of every Quayside container in the production stack (and of every process
# testbed/process_stack.py starts): turns the secret files compose mounts into the settings
# Prefect and Quayside read, then becomes the command. Secrets go into the environment, never
# into an argv or a log line; errors name the file, never its contents.
#
#   QUAYSIDE_PREFECT_AUTH_STRING_FILE  the Prefect API's auth string (user:password):
#                                      PREFECT_API_AUTH_STRING for every client, and
#                                      PREFECT_SERVER_API_AUTH_STRING where
#                                      QUAYSIDE_SERVES_PREFECT_API=1 (the API server)
#   QUAYSIDE_POSTGRES_PASSWORD_FILE    the database password: PREFECT_API_DATABASE_PASSWORD
#                                      where PREFECT_API_DATABASE_HOST is set, and
#                                      QUAYSIDE_DATABASE_URL (the ledger) from
#                                      QUAYSIDE_LEDGER_HOST/_PORT/_USER and
#                                      QUAYSIDE_LEDGER_DATABASE unless it is set already
set -eu

read_secret() {
    if [ ! -f "$2" ] || [ ! -r "$2" ]; then
        echo "error: $1=$2 is not a readable file; mount the secret there (see infra/compose/docker-compose.yml)" >&2
        exit 2
    fi
    value=$(cat "$2")
    if [ -z "$value" ]; then
        echo "error: $2 ($1) is empty; write the secret into it" >&2
        exit 2
    fi
    printf '%s' "$value"
}

if [ -n "${QUAYSIDE_PREFECT_AUTH_STRING_FILE:-}" ]; then
    auth=$(read_secret QUAYSIDE_PREFECT_AUTH_STRING_FILE "$QUAYSIDE_PREFECT_AUTH_STRING_FILE")
    export PREFECT_API_AUTH_STRING="$auth"
    if [ "${QUAYSIDE_SERVES_PREFECT_API:-0}" = 1 ]; then
        export PREFECT_SERVER_API_AUTH_STRING="$auth"
    fi
    unset auth
fi

password=""
if [ -n "${QUAYSIDE_POSTGRES_PASSWORD_FILE:-}" ]; then
    password=$(read_secret QUAYSIDE_POSTGRES_PASSWORD_FILE "$QUAYSIDE_POSTGRES_PASSWORD_FILE")
    case $password in
    *[!A-Za-z0-9._~-]*)
        echo "error: $QUAYSIDE_POSTGRES_PASSWORD_FILE (QUAYSIDE_POSTGRES_PASSWORD_FILE) holds characters a database URL would need escaped; use letters and digits: openssl rand -hex 32 > $QUAYSIDE_POSTGRES_PASSWORD_FILE" >&2
        exit 2
        ;;
    esac
    if [ -n "${PREFECT_API_DATABASE_HOST:-}" ]; then
        export PREFECT_API_DATABASE_PASSWORD="$password"
    fi
fi

if [ -z "${QUAYSIDE_DATABASE_URL:-}" ] && [ -n "${QUAYSIDE_LEDGER_HOST:-}" ]; then
    credentials="${QUAYSIDE_LEDGER_USER:-quayside}"
    if [ -n "$password" ]; then
        credentials="$credentials:$password"
    fi
    export QUAYSIDE_DATABASE_URL="postgresql+psycopg://$credentials@$QUAYSIDE_LEDGER_HOST:${QUAYSIDE_LEDGER_PORT:-5432}/${QUAYSIDE_LEDGER_DATABASE:-quayside}"
    unset credentials
fi
unset password

exec "$@"
