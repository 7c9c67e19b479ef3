#!/usr/bin/env bash
# Two nodes on one machine (issue 30): each "node" is a network namespace with its own hostname
# (UTS namespace) and node-local scratch (a mount namespace binding its own directory at one path),
# and the two are joined by a veth pair whose addresses exist only inside them (no traffic leaves
# the machine). `mpirun` runs on node A with a hostfile of 2 slots per node; its remote agent is
# nodes/agent.sh, which enters the named node's namespaces (instead of ssh). MPI runs over TCP
# between the nodes (shared memory within one). The rehearsal:
#   1. prepares the data across both nodes (distributed prepare);
#   2. trains with checkpoints, stops, resumes with --resume auto, and compares the final weights
#      with the same job on 4 local ranks (bit for bit: the same reduction order);
#   3. starts a job on a node-local run.dir: it stops before the first step, naming rank 2's host;
#   4. node B dies mid-run, two ways (below): the training processes end within dist.timeout_s plus
#      a bounded roll call, with a line naming node B;
#   5. a hostfile naming a host that cannot be reached fails within a bound, naming it.
# Where namespaces cannot be made (not root, no veth) it prints one SKIP line and exits 77 (ctest:
# Skipped, never Passed).
# Usage: two_nodes.sh MODTRAIN REPO_DIR [--full] (--full: more steps and a second kill point)
set -euo pipefail
mt=$(realpath "$1") repo=$(realpath "$2") full=${3:-}
skip() { echo "SKIP: two-node rehearsal: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root to create network, UTS and mount namespaces (run as root, as CI does)"
command -v ip > /dev/null || skip "needs iproute2's ip (apt install iproute2)"
source "$(dirname "$0")/common.sh"
tag=mt$$  # namespace and link names unique to this run (concurrent runs do not meet)
ns_a=$tag-a ns_b=$tag-b
cleanup() {
  for ns in "$ns_a" "$ns_b"; do
    pids=$(ip netns pids "$ns" 2> /dev/null || true)
    [[ -z $pids ]] || kill -9 $pids 2> /dev/null || true
    ip netns del "$ns" 2> /dev/null || true  # removes the veth end inside it, and so the pair
  done
  cd / && rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns_a" 2> /dev/null || skip "cannot create a network namespace (ip netns add: no CAP_SYS_ADMIN?)"
ip netns add "$ns_b" || skip "cannot create a second network namespace"
ip link add "${tag}a" type veth peer name "${tag}b" 2> /dev/null || skip "cannot create a veth pair (no veth module?)"
ip link set "${tag}a" netns "$ns_a" && ip link set "${tag}b" netns "$ns_b"
ip -n "$ns_a" addr add 10.213.7.1/24 dev "${tag}a" && ip -n "$ns_b" addr add 10.213.7.2/24 dev "${tag}b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "${tag}a" up && ip -n "$ns_b" link set "${tag}b" up
unshare --uts --mount true 2> /dev/null || skip "cannot create UTS and mount namespaces"

# The nodes: their names resolve only inside them; /scratch-like node-local storage at one path.
mkdir -p nodes scratch scratch-nodea scratch-nodeb
printf '127.0.0.1 localhost\n10.213.7.1 nodea\n10.213.7.2 nodeb\n' > nodes/hosts
printf 'nodea slots=2\nnodeb slots=2\n' > nodes/hostfile
printf 'nodea slots=2\nnodeb slots=2\nnodec slots=2\n' > nodes/hostfile-unreachable
cat > nodes/agent.sh << EOF
#!/usr/bin/env bash
# mpirun's remote agent: "agent.sh HOST COMMAND..." runs COMMAND on that node, as ssh would: this
# process (the ssh client) stays on the calling node and ends when the remote command ends. When
# the node dies (its processes killed), what the client sees depends on how: a kernel that is
# still up resets the connection (ssh: "Connection to HOST closed by remote host.", exit 255); a
# node that is gone from the network (nodes/partitioned) says nothing, and ssh notices after its
# ServerAlive probes go unanswered (30 s here; docs/cluster.md recommends them).
host=\$1; shift
case \$host in
  nodea | nodeb) ;;
  nodec) sleep 3; echo "ssh: connect to host nodec port 22: Connection timed out" >&2; exit 255 ;;  # ConnectTimeout=3
  *) echo "ssh: Could not resolve hostname \$host: Name or service not known" >&2; exit 255 ;;
esac
$dir/nodes/enter.sh "\$host" "\$@" &
remote=\$!
rc=0
wait \$remote || rc=\$?
[[ \$rc -lt 128 ]] && exit \$rc
if [[ -e $dir/nodes/partitioned ]]; then  # ssh -o ServerAliveInterval=10 -o ServerAliveCountMax=3
  sleep 30
  echo "Timeout, server \$host not responding." >&2
  exit 255
fi
echo "Connection to \$host closed by remote host." >&2
exit 255
EOF
cat > nodes/enter.sh << EOF
#!/usr/bin/env bash
# "enter.sh HOST COMMAND...": COMMAND on that node (its network, hostname and scratch), as a shell
# on it would run it.
host=\$1; shift
case \$host in nodea) ns=$ns_a ;; nodeb) ns=$ns_b ;; *) exit 255 ;; esac
exec ip netns exec "\$ns" unshare --uts --mount --propagation private sh -c '
  hostname "\$0" && mount --bind "$dir/nodes/hosts" /etc/hosts &&
  mount --bind "$dir/scratch-\$0" "$dir/scratch" && cd "$dir" && exec sh -c "\$*"' "\$host" "\$@"
EOF
chmod +x nodes/agent.sh nodes/enter.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun on node A; the hostfile puts ranks 0,1 on nodea and 2,3 on nodeb. MPI between the nodes
# over TCP on the veth only; out-of-band (mpirun <-> orted) on it too.
mca=(--mca plm_rsh_agent "$dir/nodes/agent.sh" --mca btl self,vader,tcp --mca btl_tcp_if_include 10.213.7.0/24
     --mca oob_tcp_if_include 10.213.7.0/24)
on_nodes() {  # on_nodes HOSTFILE ARGS...: `mpirun -np 4 ARGS` launched from node A
  local hostfile=$1; shift
  nodes/enter.sh nodea "mpirun --hostfile $dir/nodes/$hostfile ${mca[*]} -np 4 $(printf '%q ' "$@")"
}

steps=16 stop=8
[[ $full == --full ]] && steps=60 stop=30
synth_data "$mt" 1500 200 1200
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=$dir/vocab.txt --set data.prepared_dir=$dir/prep
     --set "data.train=[$dir/data/train-*.jsonl]" --set "data.valid=[$dir/data/valid-*.jsonl]"
     --set train.max_steps=$steps --set train.warmup_steps=2 --set log.every=4 --set eval.every=$stop
     --set checkpoint.every=$stop --set dist.threads=1 --set train.micro_batch=8 --set dist.timeout_s=10
     --set dist.check_replicas_every=4)

# 1. distributed prepare across the nodes
on_nodes hostfile "$mt" data prepare "${cfg[@]}" > prepare.txt 2>&1 || { cat prepare.txt; fail "prepare across 2 nodes"; }

# 2. train, stop, resume across the nodes; the same job on 4 local ranks
on_nodes hostfile "$mt" train "${cfg[@]}" --set run.dir=$dir/two --set dist.timeline=$dir/two-timeline.json \
  --stop-after $stop > two1.txt 2>&1 ||
  { cat two1.txt; fail "train across 2 nodes"; }
grep -q "4 ranks on 2 hosts" two1.txt || { cat two1.txt; fail "the banner does not show 4 ranks on 2 hosts"; }
# the banner names what carries MPI's messages between the nodes (TCP over the veth pair here)
grep -Eq "MPI transport: Open MPI v[0-9.]+: pml ob1, within a node [a-z+]+, between nodes ([a-z]+\+)*tcp(\+[a-z]+)* \(every rank\)" two1.txt ||
  { cat two1.txt; fail "the banner does not name the MPI transport between the nodes"; }
# the step model (docs/scaling.md) against this job: its alpha-beta all-reduce fitted to `dist
# selftest` over the same ranks and links, and its exposure rule against the steps just run
on_nodes hostfile "$mt" dist selftest --max-mb 1 --json $dir/selftest.json > selftest.txt 2>&1 ||
  { cat selftest.txt; fail "dist selftest across 2 nodes"; }
grep -q "selftest: PASS: mpi, 4 rank(s) on 2 node(s)" selftest.txt || { cat selftest.txt; fail "selftest line"; }
python3 "$repo/scripts/step_model.py" --against $dir/selftest.json $dir/two-timeline-rank0.json ${STEP_MODEL_LIMITS:-0.5 8} \
  > step_model.txt 2>&1 || { cat step_model.txt; fail "the step model against the rehearsal"; }
sed 's/^/step model: /' step_model.txt
on_nodes hostfile "$mt" train "${cfg[@]}" --set run.dir=$dir/two --resume auto > two2.txt 2>&1 ||
  { cat two2.txt; fail "resume across 2 nodes"; }
grep -q "resumed from .*step-$(printf %07d $stop) at step $stop of $steps" two2.txt || { cat two2.txt; fail "resume line"; }
mpiexec --oversubscribe -np 4 "$mt" train "${cfg[@]}" --set run.dir=$dir/local > local.txt 2>&1 ||
  { cat local.txt; fail "train on 4 local ranks"; }
compared=$(python3 - two/model/model.safetensors local/model/model.safetensors << 'PY'
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    return {k: raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys(), "different tensor names"
differ = [k for k in a if a[k] != b[k]]
assert not differ, f"{len(differ)} of {len(a)} tensors differ, first {differ[0]}"
print(len(a), sum(len(v) for v in a.values()) // 4)
PY
) || fail "final weights: 2 nodes (stopped and resumed) against 4 local ranks: $compared"
read -r ntensors nvalues <<< "$compared"
[[ $ntensors -gt 10 && $nvalues -gt 100000 ]] || fail "compared too little: $compared"

# 3. run.dir on node-local scratch: stops at start, naming rank 2 on nodeb
rc=0
on_nodes hostfile "$mt" train "${cfg[@]}" --set run.dir=$dir/scratch/run > local_dir.txt 2>&1 || rc=$?
[[ $rc -ne 0 ]] || { cat local_dir.txt; fail "a node-local run.dir must stop the job"; }
grep -q "error: run.dir $dir/scratch/run is not the same directory on every rank: rank 2 on host nodeb does not see the .run-id file rank 0 wrote there (rank 0 is on host nodea)" local_dir.txt ||
  { cat local_dir.txt; fail "the node-local run.dir error must name rank 2 on nodeb"; }
[[ ! -e scratch-nodea/run/metrics.jsonl ]] || fail "node-local run.dir: a step ran"

# 4. node B dies mid-run.
#    rst: its processes are killed and its kernel resets their connections (an OOM kill, a crash
#    with the OS up): the launcher sees it at once; the whole job ends, Open MPI naming nodeb.
#    partition: the node vanishes from the network first (power, switch): nothing is reset. The
#    ranks on node A block in a collective until dist.timeout_s; rank 0's watchdog roll call then
#    names the silent ranks and their host, every rank leaves RUN/hangs/rank-R.txt, and the training
#    processes exit. mpirun itself stays until its TCP link to the lost daemon times out (Linux
#    retransmission limits: many minutes); the test ends it (docs/cluster.md: what a user sees).
modtrain_on_a() { for p in $(ip netns pids "$ns_a"); do [[ $(cat /proc/$p/comm 2> /dev/null) == modtrain ]] && echo $p; done; true; }
node_b_dies() {  # node_b_dies rst|partition STEP
  local how=$1 at=$2 run=$dir/kill-$1-$2
  rm -f nodes/partitioned
  ip -n "$ns_b" link set "${tag}b" up
  on_nodes hostfile "$mt" train "${cfg[@]}" --set run.dir=$run --set train.max_steps=100000 --set log.every=1 \
    > kill-$how-$at.txt 2>&1 &
  local job=$!
  for _ in $(seq 1200); do
    grep -q "\"step\":$at," "$run/metrics.jsonl" 2> /dev/null && break
    sleep 0.05
  done
  grep -q "\"step\":$at," "$run/metrics.jsonl" || { kill $job; cat kill-$how-$at.txt; fail "$how: the job did not reach step $at"; }
  local start=$SECONDS
  if [[ $how == partition ]]; then touch nodes/partitioned; ip -n "$ns_b" link set "${tag}b" down; fi
  kill -9 $(ip netns pids "$ns_b")
  if [[ $how == rst ]]; then
    local rc=0
    timeout 60 tail --pid=$job -f /dev/null || rc=$?
    [[ $rc -eq 0 ]] || { kill -9 $job; cat kill-$how-$at.txt; fail "rst: the job did not end within 60 s of node B's death"; }
    wait $job && { cat kill-$how-$at.txt; fail "rst: the job exited 0 after node B died"; }
    # Open MPI's "Remote daemon: ... on node nodeb" when its link to the daemon drops first, the
    # ssh client's "Connection to nodeb closed by remote host." when the session ends first.
    grep -Eq "Remote daemon: .* on node nodeb|Connection to nodeb closed by remote host" kill-$how-$at.txt ||
      { cat kill-$how-$at.txt; fail "rst: no line names nodeb"; }
    [[ -z $(ip netns pids "$ns_a") ]] || fail "rst: processes left on node A"
  else
    # dist.timeout_s (10) + the roll call's bounded wait (2.5 + 7.5) + exit: 30 s at most
    for _ in $(seq 300); do [[ -z $(modtrain_on_a) ]] && break; sleep 0.1; done
    [[ -z $(modtrain_on_a) ]] || { cat kill-$how-$at.txt; fail "partition: training processes left on node A after $((SECONDS - start)) s"; }
    grep -Eq "^\[rank 0\] error: watchdog: .* did not complete within dist.timeout_s = 10 s; .*roll call \([0-9]+ s\): ranks 2,3 on nodeb did not answer \(dead, hung or cut off\); ranks 0,1 on nodea did; each rank's operation and step: $run/hangs/" kill-$how-$at.txt ||
      { cat kill-$how-$at.txt; fail "partition: rank 0's watchdog line must name ranks 2,3 on nodeb"; }
    for r in 0 1; do
      grep -q "^step: [0-9]" "$run/hangs/rank-0000$r.txt" && grep -q "^waiting in: " "$run/hangs/rank-0000$r.txt" ||
        fail "partition: no hang record for rank $r: $(cat "$run/hangs/rank-0000$r.txt" 2>&1)"
    done
    kill -9 $(ip netns pids "$ns_a") 2> /dev/null || true  # mpirun and the hung ssh client
    wait $job 2> /dev/null || true
  fi
  local took=$((SECONDS - start))
  echo "node B dies ($how) at step $at: the training processes ended within $took s; $(grep -Em1 "on node nodeb|Connection to nodeb|roll call" kill-$how-$at.txt | cut -c1-220)"
}
node_b_dies rst 3
node_b_dies partition 3
if [[ $full == --full ]]; then node_b_dies rst 25; node_b_dies partition 25; fi

# 5. a host that cannot be reached: a bounded failure naming it
start=$SECONDS rc=0
timeout 60 bash -c "$(declare -f on_nodes); $(declare -p mca dir); on_nodes hostfile-unreachable true" > unreachable.txt 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || { cat unreachable.txt; fail "an unreachable host: exit $rc"; }

grep -q "nodec" unreachable.txt || { cat unreachable.txt; fail "the failure must name nodec"; }
echo "unreachable host: failed in $((SECONDS - start)) s"
echo "two nodes ok ($ntensors tensors, $nvalues values equal; 2 nodes x 2 ranks over TCP)"
