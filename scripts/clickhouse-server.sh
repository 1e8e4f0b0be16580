#!/usr/bin/env bash
# A throwaway ClickHouse server on loopback, started as a plain process (no systemd, no root paths).
#
#   scripts/clickhouse-server.sh start [NAME]   config + data in .cache/clickhouse/NAME on loopback ports;
#                                               prints http://127.0.0.1:HTTP_PORT as the LAST line (the
#                                               native port is in .cache/clickhouse/NAME/tcp_port). An
#                                               existing NAME keeps its data and, while they are free, its ports.
#   scripts/clickhouse-server.sh stop [NAME]    SIGTERM (SIGKILL after 20 s); the data stays
#   scripts/clickhouse-server.sh status [NAME]  prints the URL, exit 0 if /ping answers
#   scripts/clickhouse-server.sh destroy [NAME] stop, then delete NAME's config and data (the only
#                                               subcommand that deletes anything)
#   scripts/clickhouse-server.sh reset [NAME]   destroy, then start empty
#
# Tests share one server and get fresh data from a unique database each; nothing relies on a restart
# emptying the server. WATTSPLIT_CLICKHOUSE_CACHE moves .cache/clickhouse elsewhere.
#
# The binary: Debian's clickhouse-server package (bookworm ships 18.16.1, installed by
# scripts/provision.sh), or any newer `clickhouse` single binary on PATH / $CLICKHOUSE_BIN
# (`clickhouse server` is then used). Env: CLICKHOUSE_START_TIMEOUT_S (default 30).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${WATTSPLIT_CLICKHOUSE_CACHE:-$ROOT/.cache/clickhouse}"
START_TIMEOUT_S="${CLICKHOUSE_START_TIMEOUT_S:-30}"

log() { echo "clickhouse-server.sh: $*" >&2; }
die() { log "$*"; exit 1; }

server_cmd() {
  if [ -n "${CLICKHOUSE_BIN:-}" ]; then echo "$CLICKHOUSE_BIN server"; return 0; fi
  if command -v clickhouse-server >/dev/null 2>&1; then command -v clickhouse-server; return 0; fi
  if [ -x /usr/sbin/clickhouse-server ]; then echo /usr/sbin/clickhouse-server; return 0; fi
  if command -v clickhouse >/dev/null 2>&1; then echo "$(command -v clickhouse) server"; return 0; fi
  return 1
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# The port in FILE if it is still free on loopback, else a new free one.
reuse_port() {
  local p=""; [ -f "$1" ] && p="$(cat "$1")"
  if [ -n "$p" ] && node -e 'const s=require("net").createServer();s.on("error",()=>process.exit(1));s.listen(+process.argv[1],"127.0.0.1",()=>s.close())' "$p" 2>/dev/null; then
    echo "$p"
  else
    free_port
  fi
}

ping() {
  node -e 'require("http").get(process.argv[1]+"/ping",{timeout:2000},r=>{let b="";r.on("data",d=>b+=d);r.on("end",()=>process.exit(b.startsWith("Ok")?0:1))}).on("error",()=>process.exit(1)).on("timeout",()=>process.exit(1))' "$1"
}

alive() { [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

cmd_start() {
  local name="${1:-default}" dir="$RUN/${1:-default}"
  local bin; bin="$(server_cmd)" || die "no clickhouse-server binary (apt-get install clickhouse-server, or set CLICKHOUSE_BIN)"
  if alive "$dir"; then
    # Running (or still starting): never start a second server on the same data.
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until ping "http://127.0.0.1:$(cat "$dir/http_port")"; do
      [ $SECONDS -ge $deadline ] && die "server $name (pid $(cat "$dir/pid")) holds $dir but does not answer /ping; stop it first"
      alive "$dir" || break
      sleep 0.3
    done
    if alive "$dir"; then log "already running"; echo "http://127.0.0.1:$(cat "$dir/http_port")"; return 0; fi
  fi
  # Keeps whatever data an earlier start left (restart = same tables); `destroy` is what deletes it.
  mkdir -p "$dir/data/tmp" "$dir/data/user_files" "$dir/log"
  [ -d "$dir/data/metadata" ] && log "server $name: reusing the data in $dir/data"
  local http tcp inter
  http="$(reuse_port "$dir/http_port")"; tcp="$(reuse_port "$dir/tcp_port")"; inter="$(reuse_port "$dir/interserver_port")"
  echo "$http" >"$dir/http_port"; echo "$tcp" >"$dir/tcp_port"; echo "$inter" >"$dir/interserver_port"
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/server.err.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <interserver_http_port>$inter</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/data/tmp/</tmp_path>
  <user_files_path>$dir/data/user_files/</user_files_path>
  <format_schema_path>$dir/data/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <max_connections>256</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>64</max_concurrent_queries>
  <uncompressed_cache_size>134217728</uncompressed_cache_size>
  <mark_cache_size>134217728</mark_cache_size>
  <mlock_executable>false</mlock_executable>
</yandex>
EOF
  cat >"$dir/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
  # shellcheck disable=SC2086
  setsid $bin --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  local url="http://127.0.0.1:$http" deadline=$((SECONDS + START_TIMEOUT_S))
  until ping "$url"; do
    if ! alive "$dir"; then tail -30 "$dir/log/stdout.log" "$dir/log/server.err.log" >&2 2>/dev/null || true; die "clickhouse-server exited during start"; fi
    if [ $SECONDS -ge $deadline ]; then cmd_stop "$name" || true; die "clickhouse-server did not answer /ping within ${START_TIMEOUT_S}s"; fi
    sleep 0.3
  done
  log "server $name up (pid $(cat "$dir/pid"), native port $tcp, data $dir/data)"
  echo "$url"
}

cmd_stop() {
  local name="${1:-default}" dir="$RUN/${1:-default}"
  if alive "$dir"; then
    local pid; pid="$(cat "$dir/pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then log "server $name ignored SIGTERM for 20 s, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/pid"
  log "server $name stopped (data kept in $dir/data; 'destroy $name' deletes it)"
}

cmd_destroy() {
  local name="${1:-default}" dir="$RUN/${1:-default}"
  cmd_stop "$name"
  rm -rf "$dir"
  log "server $name destroyed (deleted $dir)"
}

cmd_status() {
  local name="${1:-default}" dir="$RUN/${1:-default}"
  if alive "$dir" && ping "http://127.0.0.1:$(cat "$dir/http_port")"; then echo "http://127.0.0.1:$(cat "$dir/http_port")"; return 0; fi
  log "server $name not running"; return 1
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  destroy) shift; cmd_destroy "$@" ;;
  reset) shift; cmd_destroy "$@"; cmd_start "$@" ;;
  *) echo "usage: scripts/clickhouse-server.sh start|stop|status|destroy|reset [NAME]" >&2; exit 2 ;;
esac
