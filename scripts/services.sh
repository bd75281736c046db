#!/usr/bin/env bash
# Make sure PostgreSQL (15+, for UNIQUE NULLS NOT DISTINCT) and Redis answer on 127.0.0.1.
# Starts them when they are installed but stopped; installs them from the OS packages when absent.
set -euo pipefail
PGHOST=${RMSML_TEST_PGHOST:-127.0.0.1}
PGPORT=${RMSML_TEST_PGPORT:-5432}
REDIS_PORT=${RMSML_TEST_REDIS_PORT:-6379}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
apt_updated=0
apt_install() {
  [ $apt_updated = 1 ] || { $SUDO apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

pg_up() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PGHOST" -p "$PGPORT"; }
if ! pg_up; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "services: installing PostgreSQL from the OS packages" >&2
    apt_install postgresql postgresql-contrib
    fresh_pg=1
  fi
  echo "services: starting PostgreSQL" >&2
  for v in $(ls /etc/postgresql); do
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || $SUDO pg_ctlcluster "$v" main start || true
  done
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "services: PostgreSQL did not start" >&2; exit 1; }
  if [ "${fresh_pg:-0}" = 1 ]; then
    # A fresh install authenticates TCP by password: give the postgres role the test password.
    $SUDO su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  fi
fi

redis_up() { command -v redis-cli >/dev/null 2>&1 && [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
if ! redis_up; then
  command -v redis-server >/dev/null 2>&1 || { echo "services: installing Redis from the OS packages" >&2; apt_install redis-server; }
  echo "services: starting Redis" >&2
  mkdir -p /tmp/rmsml-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /tmp/rmsml-redis --logfile /tmp/rmsml-redis/redis.log
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  redis_up || { echo "services: Redis did not start" >&2; exit 1; }
fi

# A headless browser for the report test (tests/test_accuracy.py renders the run report in it).
if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
  echo "services: installing a headless Chromium from the OS packages" >&2
  apt_install chromium-headless-shell || apt_install chromium \
    || echo "services: no headless Chromium to be had; the report browser test will fail" >&2
fi
