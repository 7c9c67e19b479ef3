#!/usr/bin/env bash
# scripts/slurm/train.sbatch, checked without a Slurm (none is installed here):
#   1. bash syntax, and every #SBATCH line is an sbatch option with a well-formed value;
#   2. dry runs: the srun line it would launch (PMIx, one task per GPU, CPU binding, kill on bad
#      exit, --resume auto, the run.dir of the job id) and the NCCL settings per NETWORK; a wrong
#      NETWORK is one line and exit 2;
#   3. its requeue logic end to end on CPU: `srun` and `scontrol` on PATH stand in for Slurm's
#      (srun -> mpiexec with SLURM_NTASKS ranks, scontrol logs its arguments). A run stopped before
#      the end (--stop-after, as SIGUSR1 before the time limit does) is requeued; the requeued job
#      resumes from its checkpoint, finishes and is not requeued; a failing run is not requeued and
#      keeps its exit code.
# Usage: slurm_template.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$(realpath "$1") repo=$(realpath "$2")
sbatch_file=$repo/scripts/slurm/train.sbatch
source "$(dirname "$0")/common.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# 1. syntax and directives
bash -n "$sbatch_file" || fail "bash -n: syntax error in $sbatch_file"
python3 - "$sbatch_file" << 'PY' || fail "#SBATCH directives"
import re, sys
known = {"job-name", "nodes", "ntasks-per-node", "gpus-per-task", "cpus-per-task", "mem", "time", "signal",
         "requeue", "open-mode", "output", "error", "partition", "account", "gpus-per-node", "exclusive", "qos"}
checked = 0
for line in open(sys.argv[1]):
    if not line.startswith("#SBATCH"):
        continue
    m = re.match(r"#SBATCH --([a-z-]+)(?:=(\S+))?\s*(#.*)?$", line.rstrip("\n"))
    assert m, f"malformed: {line!r}"
    name, value = m.group(1), m.group(2)
    assert name in known, f"unknown sbatch option --{name}"
    if name in ("nodes", "ntasks-per-node", "gpus-per-task", "cpus-per-task"):
        assert value and value.isdigit() and int(value) > 0, f"--{name}={value}"
    if name == "time":
        assert re.fullmatch(r"(\d+-)?\d+:\d\d:\d\d", value), f"--time={value}"
    if name == "signal":
        assert re.fullmatch(r"(B:)?USR1@\d+", value), f"--signal={value}: modtrain saves on USR1"
    if name == "open-mode":
        assert value == "append", "a requeued job must append to its log"
    checked += 1
for needed in ("ntasks-per-node", "gpus-per-task", "signal", "requeue"):
    assert any(f"#SBATCH --{needed}" in l for l in open(sys.argv[1])), f"--{needed} missing"
assert checked >= 8, f"only {checked} directives checked"
print(f"{checked} #SBATCH directives checked")
PY

# 2. dry runs
export SLURM_JOB_ID=4242 SLURM_SUBMIT_DIR=$dir SLURM_CPUS_PER_TASK=6
DRY_RUN=1 bash "$sbatch_file" "$repo/configs/tiny.yaml" --set train.max_steps=8 > dry.txt 2>&1 || { cat dry.txt; fail "dry run"; }
srun_line=$(grep '^srun ' dry.txt) || { cat dry.txt; fail "no srun line"; }
for want in "--mpi=pmix" "--kill-on-bad-exit=1" "--cpu-bind=cores" "--gpus-per-task=1" "--cpus-per-task=6" \
            "$dir/build/modtrain train --config $repo/configs/tiny.yaml" "--set run.dir=$dir/runs/slurm-4242" \
            "--set dist.device=cuda --resume auto --set train.max_steps=8"; do
  [[ $srun_line == *"$want"* ]] || fail "the srun line lacks '$want': $srun_line"
done
for want in NCCL_IB_HCA=mlx5 NCCL_NET_GDR_LEVEL=PHB NCCL_DEBUG_SUBSYS=INIT,NET OMPI_MCA_pml=ucx; do
  grep -qx "$want" dry.txt || { cat dry.txt; fail "NETWORK=ib: $want not set"; }
done
NETWORK=roce DRY_RUN=1 bash "$sbatch_file" x.yaml > roce.txt 2>&1
grep -qx NCCL_IB_GID_INDEX=3 roce.txt && grep -qx NCCL_IB_TC=106 roce.txt || { cat roce.txt; fail "NETWORK=roce"; }
NETWORK=tcp DRY_RUN=1 bash "$sbatch_file" x.yaml > tcp.txt 2>&1
grep -qx NCCL_IB_DISABLE=1 tcp.txt && grep -qx OMPI_MCA_pml=ob1 tcp.txt || { cat tcp.txt; fail "NETWORK=tcp"; }
rc=0
NETWORK=infiniband DRY_RUN=1 bash "$sbatch_file" x.yaml > bad.txt 2>&1 || rc=$?
[[ $rc -eq 2 && $(wc -l < bad.txt) -eq 1 ]] && grep -q "error: NETWORK=infiniband is not one of ib, roce, tcp" bad.txt ||
  { cat bad.txt; fail "a wrong NETWORK must be one line and exit 2 (got $rc)"; }

# 3. requeue logic, end to end on CPU with stand-ins for srun and scontrol
mkdir -p bin
cat > bin/srun << 'EOF'
#!/usr/bin/env bash
# Slurm's srun, for this test: drops srun's own options, runs the command on SLURM_NTASKS ranks.
while [[ $1 == --* ]]; do shift; done
exec mpiexec --oversubscribe -np "${SLURM_NTASKS:-2}" "$@"
EOF
cat > bin/scontrol << EOF
#!/usr/bin/env bash
echo "\$*" >> $dir/scontrol.log
EOF
chmod +x bin/srun bin/scontrol
synth_data "$mt" 600 100 800
cfg=("$repo/configs/tiny.yaml" --set tokenizer.vocab=$dir/vocab.txt --set data.prepared_dir=$dir/prep
     --set "data.train=[$dir/data/train-*.jsonl]" --set "data.valid=[]" --set train.max_steps=8
     --set train.warmup_steps=1 --set log.every=2 --set checkpoint.every=4 --set dist.threads=1
     --set train.micro_batch=8 --set dist.device=cpu)
"$mt" data prepare --config "${cfg[@]}" > /dev/null
run=(env PATH="$dir/bin:$PATH" SLURM_NTASKS=2 MODTRAIN="$mt" NETWORK=tcp bash "$sbatch_file")
"${run[@]}" "${cfg[@]}" --stop-after 4 > job1.txt 2>&1 || { cat job1.txt; fail "job 1"; }
grep -q "stopped before the end .*requeueing job 4242" job1.txt || { cat job1.txt; fail "job 1 was not requeued"; }
[[ $(cat scontrol.log) == "requeue 4242" ]] || fail "scontrol: $(cat scontrol.log)"
"${run[@]}" "${cfg[@]}" > job2.txt 2>&1 || { cat job2.txt; fail "job 2 (the requeued one)"; }
grep -q "resumed from .*step-0000004 at step 4 of 8" job2.txt || { cat job2.txt; fail "job 2 did not resume"; }
grep -q "training finished; the model is in $dir/runs/slurm-4242/model" job2.txt || { cat job2.txt; fail "job 2 did not finish"; }
[[ $(wc -l < scontrol.log) -eq 1 ]] || fail "a finished job was requeued: $(cat scontrol.log)"
rc=0
"${run[@]}" "${cfg[@]}" --set train.lrr=1 > job3.txt 2>&1 || rc=$?
[[ $rc -eq 2 ]] || { cat job3.txt; fail "a failing run must keep its exit code 2 (got $rc)"; }
[[ $(wc -l < scontrol.log) -eq 1 ]] || fail "a failed job was requeued"
echo "slurm template ok"
