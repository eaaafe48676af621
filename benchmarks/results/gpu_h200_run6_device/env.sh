# Shared by the three device calls of run 6 (sourced). D persists on the warm machine between calls.
D=/tmp/dev
REPO=$PWD
mkdir -p "$D" "$D/home"
cp .devcarry/scripts/bench/*.py benchmarks/  # this branch's scripts (the device copies the lead's checkout)
export LOCALBENCH_HOME=$D/home LOCALBENCH_NO_BW_PROBE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
stamp() { echo "== $(date -u +%H:%M:%S) +${SECONDS}s $*"; }
host_facts() {  # what the host side looks like right now
  echo "loadavg: $(cat /proc/loadavg)"
  head -1 /proc/stat
  for f in /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor /sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq; do
    [ -r "$f" ] && echo "$f: $(cat $f)"
  done
  grep -m1 "cpu MHz" /proc/cpuinfo
}
