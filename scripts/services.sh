#!/usr/bin/env bash
# Start the local services the tests use if they are not running (PostgreSQL, Redis, RabbitMQ).
set -uo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! up 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if ! up 5672; then
  rabbitmq-server -detached || true
fi
for port in 5432 6379; do
  for _ in $(seq 1 30); do up "$port" && break; sleep 1; done
  up "$port" || { echo "service on port $port did not start" >&2; exit 1; }
done
