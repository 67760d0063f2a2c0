"""nginx's checker and reload as argv templates (placeholders are filled per host by
:mod:`quayside.config.service_commands`). nginx re-reads its whole configuration on reload, so
it never needs a restart for a config change."""

from __future__ import annotations


def check(main: str = "{main}") -> list[str]:
    """Test a staged configuration (``-q``: only errors on stderr)."""
    return ["nginx", "-t", "-q", "-c", main]


def reload() -> list[str]:
    return ["nginx", "-s", "reload"]


SETTLE_TRIES = 200
"""How many times (25 ms apart, plus one ``ps``) :func:`settled` looks for the old workers."""

SETTLE_SCRIPT = r"""workers() {
  ps -C nginx -o pid=,ppid=,args= 2>/dev/null |
    awk '$3 == "nginx:" && $4 == "worker" && $5 == "process" && NF == 5 { printf "%s:%s ", $1, $2 }'
}
before=$(workers)
"$@" || exit
[ -n "$before" ] || exit 0
tries=0
while [ "$tries" -lt "$QUAYSIDE_SETTLE_TRIES" ]; do
  if awk -v before="$before" -v now="$(workers)" 'BEGIN {
      n = split(before, b, " "); m = split(now, c, " ")
      for (i = 1; i <= m; i++) { split(c[i], f, ":"); cur[f[1]] = f[2] }
      for (i = 1; i <= n; i++) { split(b[i], f, ":"); old[f[1]] = f[2] }
      for (p in cur) if (!(p in old)) fresh[cur[p]] = 1
      reloaded = 0; blocked = 0; alive = 0
      for (p in old) {
        if (old[p] in fresh) reloaded = 1
        if (p in cur) { alive = 1; if (old[p] in fresh) blocked = 1 }
      }
      exit blocked || (!reloaded && alive)
    }'; then
    exit 0
  fi
  tries=$((tries + 1))
  sleep 0.025
done
echo "quayside: nginx's old workers were still accepting after the reload" >&2
"""


def settled(reload_argv: list[str]) -> list[str]:
    """Run ``reload_argv``, then wait until the old workers of the nginx it reloaded stop
    accepting (nginx renames a worker ``worker process is shutting down`` as it closes its
    listening sockets). ``nginx -s reload`` returns as soon as the master has the signal, and
    an old worker that has not yet handled its QUIT still answers new connections with the
    old configuration - a verify that passed could be followed by an old answer.

    Only masters that started new workers are waited on, so other nginx instances on the
    host do not hold it up (a restart, whose old workers are simply gone, does not wait);
    without ``ps -C`` (busybox) it does not wait. After
    :data:`SETTLE_TRIES` looks it returns 0 with a line on stderr and leaves the verdict to
    the verify."""
    script = SETTLE_SCRIPT.replace('"$QUAYSIDE_SETTLE_TRIES"', str(SETTLE_TRIES))
    return ["sh", "-c", script, "quayside-nginx-reload", *reload_argv]
