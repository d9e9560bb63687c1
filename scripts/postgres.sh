#!/usr/bin/env bash
# A private PostgreSQL server for tests and trials, on 127.0.0.1 only, in a folder of its own:
#   scripts/postgres.sh start DIR PORT   installs PostgreSQL with apt-get when missing (as root), creates a
#                                        cluster in DIR, starts it, creates role and database 'actorbackup'
#                                        (password 'actorbackup'), prints the connection string
#   scripts/postgres.sh stop DIR         stops it (DIR stays; remove it yourself)
# As root the server runs as the 'postgres' user, since PostgreSQL refuses to run as root.
set -euo pipefail
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: scripts/postgres.sh start DIR PORT | stop DIR" >&2
  exit 2
fi

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case $cmd in
  start)
    port=${3:?usage: scripts/postgres.sh start DIR PORT}
    if [ -z "$(bindir)" ] || [ ! -x "$(bindir)/initdb" ]; then
      if [ "$(id -u)" != 0 ]; then
        echo "postgres: PostgreSQL is not installed; install the 'postgresql' package" >&2
        exit 1
      fi
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
    fi
    bin=$(bindir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
      chown postgres "$dir"
      if ! runuser -u postgres -- test -w "$dir"; then
        echo "postgres: the postgres user cannot write $dir: open its parent folders to it (chmod o+x) or choose another" >&2
        exit 1
      fi
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir" -A trust -U postgres --no-sync >/dev/null
    fi
    # Tests want speed, not durability across power loss: fsync off. Sockets in DIR, not /var/run.
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null
    as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'actorbackup') THEN
    CREATE ROLE actorbackup LOGIN PASSWORD 'actorbackup' CREATEDB;
  END IF;
END $$;
SQL
    if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'actorbackup'" | grep -q 1; then
      as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE actorbackup OWNER actorbackup" >/dev/null
    fi
    echo "Host=127.0.0.1;Port=$port;Database=actorbackup;Username=actorbackup;Password=actorbackup"
    ;;
  stop)
    bin=$(bindir)
    if [ -n "$bin" ] && [ -f "$dir/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    fi
    ;;
  *)
    echo "usage: scripts/postgres.sh start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
