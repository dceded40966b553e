#!/bin/sh
# Runs one loom-worker in a restart loop, as an outside launcher should (docs/deploy.md): a worker
# that exits — killed, lost its controller, or asked to shut down while the controller heals the
# cluster — is started again a second later and registers with the controller anew. Every
# argument goes to loom-worker; without --rank / --world-size it takes them from Slurm
# (SLURM_PROCID, SLURM_NTASKS) or a Kubernetes pod ordinal. A bad command line (exit code 2)
# ends the loop, since it would fail the same way every time.
#
#   LOOM_WORKER         the loom-worker binary (default: loom-worker on PATH)
#   GLOO_SOCKET_IFNAME  the interface the cluster talks over: without a --listen argument, the
#                       worker serves on this interface's IPv4 address (any free port), the
#                       address Gloo's mesh binds too
#
# The Slurm recipe of docs/deploy.md and tests/e2e/multi_host_test.cc run this same script.
worker=${LOOM_WORKER:-loom-worker}
listen=
case " $* " in
  *" --listen "*) ;;
  *)
    if [ -n "${GLOO_SOCKET_IFNAME:-}" ]; then
      address=$(ip -4 -o addr show dev "$GLOO_SOCKET_IFNAME" 2>/dev/null |
                awk '{ split($4, a, "/"); print a[1]; exit }')
      if [ -z "$address" ]; then
        echo "run_worker.sh: no IPv4 address on GLOO_SOCKET_IFNAME=$GLOO_SOCKET_IFNAME" >&2
        exit 2
      fi
      listen="--listen $address:0"
    fi
    ;;
esac
while true; do
  # $listen is empty or two words, split on purpose.
  # shellcheck disable=SC2086
  "$worker" "$@" $listen
  code=$?
  if [ "$code" -eq 2 ]; then
    echo "run_worker.sh: loom-worker refused its command line; not restarting" >&2
    exit 2
  fi
  echo "run_worker.sh: loom-worker exited with code $code; restarting in 1 s" >&2
  sleep 1
done
