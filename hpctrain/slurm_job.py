"""The SLURM job a run belongs to, for summary.json: read on rank 0 from the environment that
sbatch/srun set (SLURM_JOB_ID and its neighbours).

Facts about the allocation only: rank and world size always come from MPI, never from these
variables. `tasks` is SLURM_NTASKS as the ranks see it, that of their job step: under srun
the ranks themselves, under `mpiexec` inside the allocation the launcher's proxies (MPICH's
hydra starts one per node with srun), so there it is not the rank count (`ranks` is).
"""

import os

# summary.json's key -> the variables that may hold it, first found wins (sbatch sets the
# SLURM_JOB_* names, older SLURMs and srun alone the short ones)
FACTS = {
    "job_id": ("SLURM_JOB_ID", "SLURM_JOBID"),
    "job_name": ("SLURM_JOB_NAME",),
    "array_job_id": ("SLURM_ARRAY_JOB_ID",),
    "array_task_id": ("SLURM_ARRAY_TASK_ID",),
    "cluster": ("SLURM_CLUSTER_NAME",),
    "partition": ("SLURM_JOB_PARTITION",),
    "nodelist": ("SLURM_JOB_NODELIST", "SLURM_NODELIST"),
    "nodes": ("SLURM_JOB_NUM_NODES", "SLURM_NNODES"),
    "tasks": ("SLURM_NTASKS", "SLURM_NPROCS"),
    "tasks_per_node": ("SLURM_TASKS_PER_NODE",),
    "cpus_per_task": ("SLURM_CPUS_PER_TASK",),
    "restart_count": ("SLURM_RESTART_COUNT",),
}


def slurm_job(environ=None) -> dict | None:
    """{job_id, nodelist, nodes, tasks, cpus_per_task, ...} as far as set (whole numbers as
    integers), or None outside a SLURM job."""
    environ = os.environ if environ is None else environ
    if not environ.get("SLURM_JOB_ID") and not environ.get("SLURM_JOBID"):
        return None
    facts = {}
    for key, names in FACTS.items():
        value = next((environ[n].strip() for n in names if environ.get(n, "").strip()), None)
        if value is not None:
            facts[key] = int(value) if value.isascii() and value.isdigit() else value
    return facts
