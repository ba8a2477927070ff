#!/bin/bash
# =============================================================================================
# slurm/scaling.sh: submit a strong or weak scaling sweep of hpctrain to SLURM.
#
#   slurm/scaling.sh --mode strong --workload W2 --tasks 1,2,4,8,16 --allreduce ring,native \
#       --repeats 3 --out /scratch/me/w2-strong --sbatch-args "--partition=cpu --time=00:20:00"
#   slurm/scaling.sh --mode weak --nodes 1,2,4,8 --tasks-per-node 32 --out w1-weak
#
# It submits, and returns at once (job ids are printed):
#   1. unless --data is given, one job making the synthetic dataset, sized for the mode;
#   2. one slurm/train.sbatch job per (size, algorithm): an array cannot vary its size, so
#      each size is its own job (`sbatch --nodes --ntasks-per-node --ntasks` override the
#      script's #SBATCH lines); --repeats R > 1 makes that job an array of R repeats;
#   3. a final job, after all of them (--dependency=afterok:...), that runs
#      `hpctrain bench report OUT/runs/* --out OUT`: scaling.csv, scaling.md, scaling.png.
# With afterok, one failed run cancels the report job (--kill-on-invalid-dep) rather than
# leaving it pending forever; --report-after any reports anyway, with the failures marked.
#
# Knobs:
#   --mode strong|weak     strong: fixed global batch; weak: fixed local batch per rank
#   --tasks 1,2,4          rank counts; with --tasks-per-node K a size spans ceil(n/K) nodes,
#                          without it every size runs on one node
#   --nodes 1,2,4          node counts instead; ranks = nodes x --tasks-per-node (required)
#   --workload W1|W2       the shapes of docs/WORKLOADS.md (default W1); override with
#                          --features F --hidden H[,H] --classes C --batch-size B (weak, per
#                          rank) --global-batch G (strong)
#   --samples N            dataset rows (default: 4 global batches at the largest size)
#   --data DIR             use an existing dataset (no data job)
#   --allreduce a,b        algorithms side by side (default ring)
#   --steps N              training steps per run (default 30; the first is warm-up)
#   --repeats R            runs per point, as a job array (default 1); the report takes medians
#   --launcher srun|mpiexec   how train.sbatch starts the ranks (its HPCTRAIN_LAUNCHER)
#   --train-args "..."     more `hpctrain train` options for every run
#   --sbatch-args "..."    more sbatch options for every job (partition, account, time, ...)
#   --out DIR              sweep directory: data/, runs/, logs/ and the report (default
#                          scaling-MODE); must be on a file system every node sees
#   --report-after ok|any  the report job's dependency type (default ok)
#   --dry-run              print the sbatch commands instead of submitting them
# Environment: HPCTRAIN_PYTHON (the Python with hpctrain; default python3), and everything
# train.sbatch reads (HPCTRAIN_SRUN_MPI, HPCTRAIN_MPIEXEC_ARGS, ...), passed on to the jobs.
# =============================================================================================
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode="" tasks="" nodes="" per_node="" workload=W1 features="" hidden="" classes=""
batch_size="" global_batch="" samples="" data="" allreduce=ring steps=30 repeats=1
launcher=${HPCTRAIN_LAUNCHER:-srun} train_args="" sbatch_args="" out="" report_after=ok
dry_run=0
python=${HPCTRAIN_PYTHON:-python3}

die() { echo "scaling.sh: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1; shift; continue ;;
        -h|--help) sed -n '2,/^# =====/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    esac
    [ $# -ge 2 ] || die "$1 needs a value"
    case "$1" in
        --mode) mode=$2 ;;             --tasks) tasks=$2 ;;
        --nodes) nodes=$2 ;;           --tasks-per-node) per_node=$2 ;;
        --workload) workload=$2 ;;     --features) features=$2 ;;
        --hidden) hidden=$2 ;;         --classes) classes=$2 ;;
        --batch-size) batch_size=$2 ;; --global-batch) global_batch=$2 ;;
        --samples) samples=$2 ;;       --data) data=$2 ;;
        --allreduce) allreduce=$2 ;;   --steps) steps=$2 ;;
        --repeats) repeats=$2 ;;       --launcher) launcher=$2 ;;
        --train-args) train_args=$2 ;; --sbatch-args) sbatch_args=$2 ;;
        --out) out=$2 ;;               --report-after) report_after=$2 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift 2
done

# ------------------------------------------------------------------ check and size the sweep
case "$mode" in strong|weak) ;; *) die "--mode must be strong or weak" ;; esac
case "$launcher" in srun|mpiexec) ;; *) die "--launcher must be srun or mpiexec" ;; esac
case "$report_after" in ok|any) ;; *) die "--report-after must be ok or any" ;; esac
# The workloads of docs/WORKLOADS.md, copied from hpctrain.bench.workloads.WORKLOADS so that
# planning on a login node needs no Python (tests/test_slurm_scripts.py holds the two equal):
# features, hidden, classes, local batch, global batch.
case "$workload" in
    W1|w1) w=(32 64 2 256 4096) ;;
    W2|w2) w=(1024 1024,1024 10 512 8192) ;;
    *) die "--workload must be W1 or W2" ;;
esac
features=${features:-${w[0]}} hidden=${hidden:-${w[1]}} classes=${classes:-${w[2]}}
batch_size=${batch_size:-${w[3]}} global_batch=${global_batch:-${w[4]}}

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in "$features" "$batch_size" "$global_batch" "$steps" "$repeats"; do
    is_count "$v" || die "expected a positive integer, got '$v'"
done
[ "$steps" -ge 2 ] || die "--steps must be at least 2 (the first is warm-up)"
if [ -n "$per_node" ] && ! is_count "$per_node"; then
    die "--tasks-per-node must be positive"
fi

# sizes: "ranks nodes tasks-per-node" per job
sizes=()
if [ -n "$nodes" ]; then
    [ -z "$tasks" ] || die "give --tasks or --nodes, not both"
    [ -n "$per_node" ] || die "--nodes needs --tasks-per-node"
    for n in ${nodes//,/ }; do
        is_count "$n" || die "--nodes must be positive counts, got '$nodes'"
        sizes+=("$((n * per_node)) $n $per_node")
    done
else
    tasks=${tasks:-1,2,4,8,16}
    for n in ${tasks//,/ }; do
        is_count "$n" || die "--tasks must be positive counts, got '$tasks'"
        k=${per_node:-$n}
        [ "$k" -le "$n" ] || k=$n
        sizes+=("$n $(((n + k - 1) / k)) $k")
    done
fi
[ ${#sizes[@]} -gt 0 ] || die "no sizes: give --tasks or --nodes"
max_ranks=0
for s in "${sizes[@]}"; do
    read -r n _ _ <<< "$s"
    if [ "$n" -gt "$max_ranks" ]; then max_ranks=$n; fi
done
if [ "$mode" = strong ]; then
    batch_flags="--global-batch $global_batch"
    rows=$((4 * global_batch))
else
    batch_flags="--batch-size $batch_size"
    rows=$((4 * batch_size * max_ranks))
fi
rows=${samples:-$rows}

out=${out:-scaling-$mode}
# Jobs may start in another directory: keep paths absolute.
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
case "$data" in /*|"") ;; *) data=$PWD/$data ;; esac
if [ -n "$data" ] && [ ! -d "$data" ]; then die "--data $data: no such directory"; fi
if [ "$dry_run" = 0 ]; then
    [ ! -e "$out/runs" ] || [ -z "$(ls -A "$out/runs")" ] \
        || die "$out/runs already holds runs: choose a new --out"
    mkdir -p "$out/logs" "$out/runs"
fi
read -r -a extra_sbatch <<< "$sbatch_args"

# ------------------------------------------------------------------ submitting
# submit ARGS...: sbatch --parsable ARGS, and print the job id. In a dry run, print the
# command (and a script given on stdin, marked by a last argument of -) and a placeholder id.
# --export=ALL: the jobs read HPCTRAIN_* from the environment, also at sites that set
# SBATCH_EXPORT=NONE.
submit() {
    set -- --export=ALL "$@"
    if [ "$dry_run" = 1 ]; then
        local arg name=job
        for arg in "$@"; do
            case "$arg" in --job-name=*) name=${arg#--job-name=} ;; esac
        done
        echo "sbatch --parsable $*" >&2
        if [ "${!#}" = - ]; then sed 's/^/    | /' >&2; fi
        echo "{$name}"
        return
    fi
    local id
    if [ "${!#}" = - ]; then
        id=$(sbatch --parsable "${@:1:$#-1}") || die "sbatch failed: sbatch $*"
    else
        id=$(sbatch --parsable "$@") || die "sbatch failed: sbatch $*"
    fi
    echo "${id%%;*}"
}
# job_script COMMAND...: a one-step batch script running COMMAND, for sbatch's stdin.
job_script() {
    printf '#!/bin/bash\nset -u\n'
    printf '%q ' "$@"
    printf '\n'
}

after=""
if [ -z "$data" ]; then
    data=$out/data
    data_job=$(job_script "$python" -m hpctrain data synth --out "$data" --samples "$rows" \
                   --features "$features" --classes "$classes" --shards "$max_ranks" --force \
               | submit --job-name=hpctrain-data --ntasks=1 \
                   --output="$out/logs/data-%j.out" ${extra_sbatch[@]+"${extra_sbatch[@]}"} -)
    after="--dependency=afterok:$data_job"
    echo "data: job $data_job makes $rows rows x $features features -> $data"
fi

jobs=()
for s in "${sizes[@]}"; do
    read -r n nn k <<< "$s"
    for alg in ${allreduce//,/ }; do
        name="n$n-$alg"
        array=() log="$out/logs/$name-%j.out"
        if [ "$repeats" -gt 1 ]; then
            array=("--array=1-$repeats") log="$out/logs/$name-%A_%a.out"
        fi
        export HPCTRAIN_DATA="$data" HPCTRAIN_RUN="$out/runs/$name" HPCTRAIN_LAUNCHER="$launcher"
        args="--hidden $hidden $batch_flags --steps $steps --log-every $steps --allreduce $alg"
        export HPCTRAIN_ARGS="$args${train_args:+ $train_args}"
        if [ "$dry_run" = 1 ]; then
            echo "HPCTRAIN_RUN=$HPCTRAIN_RUN HPCTRAIN_ARGS='$HPCTRAIN_ARGS'" >&2
        fi
        id=$(submit --job-name="hpctrain-$mode-$name" --nodes="$nn" --ntasks-per-node="$k" \
                 --ntasks="$n" --output="$log" ${array[@]+"${array[@]}"} ${after:+"$after"} \
                 ${extra_sbatch[@]+"${extra_sbatch[@]}"} "$here/train.sbatch")
        jobs+=("$id")
        echo "$name: job $id ($n ranks on $nn node(s), $repeats repeat(s))"
    done
done

deps=$(IFS=:; echo "${jobs[*]}")
report_flags=(--dependency="after$report_after:$deps")
if [ "$report_after" = ok ]; then report_flags+=(--kill-on-invalid-dep=yes); fi
# The glob is expanded when the report job runs, after every run directory exists.
report_job=$( { printf '#!/bin/bash\nset -u\n'
                printf '%q -m hpctrain bench report %q/runs/* --out %q --mode %q\n' \
                    "$python" "$out" "$out" "$mode"; } \
              | submit --job-name="hpctrain-$mode-report" --ntasks=1 \
                  --output="$out/logs/report-%j.out" "${report_flags[@]}" \
                  ${extra_sbatch[@]+"${extra_sbatch[@]}"} -)
echo "report: job $report_job -> $out/scaling.md, scaling.csv, scaling.png"
echo "jobs: ${data_job:+$data_job }${jobs[*]} $report_job"
