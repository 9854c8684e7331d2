#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the sharding end-to-end test (Debian's slurm-wlm and munge; as
# root, no systemd): munged, slurmctld and slurmd with proctrack/linuxproc, one partition `nsod` holding every core.
# Idempotent: a running cluster is left as it is. Installs the packages when missing.
# Usage: scripts/slurm-local.sh [start|stop|status]
set -euo pipefail
action="${1:-start}"
conf=/etc/slurm/slurm.conf
host="$(hostname -s)"

status() { scontrol ping 2>/dev/null | grep -q "is UP" && sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mix|alloc'; }

case "$action" in
stop)
  pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x munged || true
  exit 0 ;;
status)
  status && { echo "slurm: up"; exit 0; } || { echo "slurm: down"; exit 1; } ;;
start) ;;
*) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
if status; then echo "slurm: already up"; exit 0; fi

# munge: a key, its folders, the daemon as the munge user.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged

cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)"
install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >"$conf" <<CONF
# Written by scripts/slurm-local.sh: a one-node test cluster.
ClusterName=nsod
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MpiDefault=none
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=nsod Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 60); do
  if status; then
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    echo "slurm: up ($host, $cpus CPUs)"; exit 0
  fi
  sleep 1
done
echo "slurm: did not come up; logs:" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
